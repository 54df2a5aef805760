import { Center, Loader } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { call, hasSession, setSignedOutHandler, type Me } from './api';
import { LoginPage } from './pages/Login';
import { navigate, usePath } from './router';
import { Shell } from './Shell';

export function App() {
  const path = usePath();
  const [me, setMe] = useState<Me | null | undefined>(undefined);

  const loadMe = useCallback(async () => {
    if (!hasSession()) {
      setMe(null);
      return;
    }
    try {
      setMe(await call('get', '/api/v1/me'));
    } catch {
      setMe(null);
    }
  }, []);

  useEffect(() => {
    setSignedOutHandler(() => setMe(null));
    void loadMe();
  }, [loadMe]);

  useEffect(() => {
    if (me === null && path !== '/login') navigate(`/login`, { replace: true });
    if (me && path === '/login') navigate('/', { replace: true });
  }, [me, path]);

  if (me === undefined)
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  if (me === null) return <LoginPage onSignedIn={loadMe} />;
  return <Shell me={me} path={path} reloadMe={loadMe} onSignedOut={() => setMe(null)} />;
}

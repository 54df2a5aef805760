import { Center, Loader } from '@mantine/core';
import { useCallback, useEffect, useState } from 'react';
import { call, hasSession, setSignedOutHandler, type Me } from './api';
import { AcceptInvitePage, PENDING_INVITE_KEY } from './pages/AcceptInvite';
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
    if (path === '/accept-invite') return; // reachable signed in or out
    if (me === null && path !== '/login') navigate(`/login`, { replace: true });
    if (me && path === '/login') {
      const invite = sessionStorage.getItem(PENDING_INVITE_KEY);
      navigate(invite ? `/accept-invite?token=${encodeURIComponent(invite)}` : '/', { replace: true });
    }
  }, [me, path]);

  if (me === undefined)
    return (
      <Center h="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  if (path === '/accept-invite') return <AcceptInvitePage me={me} onSignedIn={loadMe} />;
  if (me === null) return <LoginPage onSignedIn={loadMe} />;
  return <Shell me={me} path={path} reloadMe={loadMe} onSignedOut={() => setMe(null)} />;
}

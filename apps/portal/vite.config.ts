import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig, loadEnv } from 'vite';

const root = dirname(fileURLToPath(import.meta.url));

/**
 * The tenant portal. Production: `npm run portal:build` writes apps/portal/dist, which the api
 * serves at `/`. Development: `npm run portal:dev` serves it with hot reload and proxies the
 * api (started separately, by default on 127.0.0.1:3000; `VITE_API_TARGET` to change).
 */
export default defineConfig(({ mode }) => {
  const env = loadEnv(mode, root, 'VITE_');
  return {
    root,
    base: '/',
    plugins: [react()],
    // @backplane/contracts and @backplane/realtime resolve through their package.json
    // `exports` "browser" entries (the realtime contract; the browser-safe RealtimeClient).
    build: {
      outDir: 'dist',
      emptyOutDir: true,
      sourcemap: false,
      chunkSizeWarningLimit: 1024,
      rollupOptions: {
        // The chart library is the heaviest part: its own chunk, cached apart from the app's code.
        output: { manualChunks: { charts: ['recharts', '@mantine/charts'], realtime: ['socket.io-client'] } },
      },
    },
    server: {
      host: '127.0.0.1',
      port: 5173,
      proxy: {
        '/api': { target: env['VITE_API_TARGET'] ?? 'http://127.0.0.1:3000', changeOrigin: false },
        // The realtime socket (socket.io over WebSocket).
        '/realtime': { target: env['VITE_API_TARGET'] ?? 'http://127.0.0.1:3000', changeOrigin: false, ws: true },
      },
    },
  };
});

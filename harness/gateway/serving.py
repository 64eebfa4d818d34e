"""An aiohttp application served on its own thread and event loop, started and
stopped from synchronous code: the gateway and the scripted upstream both run so."""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web


class BackgroundServer:
    """Serve `make_app()` on host:port (port 0: any free one). Subclasses give the
    application and, when they need them, `_open` / `_close` (awaited on the server's
    loop before serving and after the last connection closed)."""

    host: str = "127.0.0.1"
    port: int = 0
    client_max_size: int = 64 * 2**20
    shutdown_timeout: float = 1.0

    def __init__(self) -> None:
        self.url: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    def make_app(self, app: web.Application) -> None:
        """Add the routes to `app`."""
        raise NotImplementedError

    async def _open(self) -> None:
        return None

    async def _close(self) -> None:
        return None

    def _serve(self, name: str) -> str:
        """Start the thread; returns the base URL. Raises what binding raised (the
        thread is gone by then)."""
        if self._thread is not None:
            return self.url
        ready, failed = threading.Event(), []
        self._thread = threading.Thread(target=self._main, args=(ready, failed), name=name, daemon=True)
        self._thread.start()
        ready.wait()
        if failed:
            self._thread.join()
            self._thread = None
            raise failed[0]
        return self.url

    def _unserve(self) -> bool:
        """Close every connection and stop the thread; False when it was not running."""
        if self._thread is None:
            return False
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._thread = None
        return True

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _main(self, ready: threading.Event, failed: list) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._listen())
        except BaseException as exc:  # reported to _serve()'s caller
            failed.append(exc)
            ready.set()
            loop.run_until_complete(self._shutdown())
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._shutdown())
            loop.close()

    async def _listen(self) -> None:
        await self._open()
        app = web.Application(client_max_size=self.client_max_size)
        self.make_app(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=self.shutdown_timeout)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port, backlog=1024).start()
        host, port = self._runner.addresses[0][:2]
        self.port = port
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        await self._close()

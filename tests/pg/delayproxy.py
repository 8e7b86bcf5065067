#!/usr/bin/env python3
"""delayproxy.py - a TCP proxy that adds latency, for the tests of a slow database.

It listens on 127.0.0.1 (a free port unless told one) and forwards every connection to
target_host:target_port. Every chunk read is written D ms later, in each direction: a
chunk read at time t goes out at t + D, in the order read, so latency adds up without
cutting throughput (a chunk never waits for the one before it to be answered). D can be
changed while it runs (set_delay); it applies to chunks read from then on. An end of
stream is passed on after the same delay; a connection that fails on one side is closed
on both.

As a module:
    from delayproxy import DelayProxy
    p = DelayProxy(5432, 25); port = p.start(); ...; p.set_delay(0); ...; p.stop()
As a command (until SIGINT or SIGTERM; prints the port it listens on):
    delayproxy.py TARGET_PORT DELAY_MS [--port N] [--target-host HOST]
"""
import argparse
import asyncio
import signal
import sys
import threading


class DelayProxy:
    """one listening socket; start() -> its port, stop() closes it and every connection."""

    def __init__(self, target_port, delay_ms, target_host="127.0.0.1", port=0):
        self.target = (target_host, target_port)
        self.delay_s = delay_ms / 1000.0
        self.port = port
        self.loop = None
        self.thread = None
        self.server = None
        self.tasks = set()
        self.connections = 0  # accepted so far
        self.chunks_up = 0  # chunks passed on from a client to the target: about its round trips

    def set_delay(self, delay_ms):
        """set_delay - D for the chunks read from now on (a float store: no lock needed)."""
        self.delay_s = delay_ms / 1000.0

    def start(self):
        """start - listens in a thread of its own; the port."""
        ready = threading.Event()
        failed = []

        def run():
            self.loop = asyncio.new_event_loop()
            try:
                self.server = self.loop.run_until_complete(asyncio.start_server(
                    self._accept, "127.0.0.1", self.port))
                self.port = self.server.sockets[0].getsockname()[1]
            except OSError as e:
                failed.append(e)
                ready.set()
                return
            ready.set()
            self.loop.run_forever()
            self.loop.close()

        self.thread = threading.Thread(target=run, name="delayproxy", daemon=True)
        self.thread.start()
        ready.wait()
        if failed:
            raise failed[0]
        return self.port

    def stop(self):
        """stop - closes the listener and every connection, ends the thread."""
        if not self.thread:
            return

        def close():
            self.server.close()
            for t in list(self.tasks):
                t.cancel()
            self.loop.call_later(0.05, self.loop.stop)

        self.loop.call_soon_threadsafe(close)
        self.thread.join(timeout=10)
        self.thread = None

    async def _accept(self, c_reader, c_writer):
        task = asyncio.current_task()
        self.tasks.add(task)
        self.connections += 1
        s_writer = None
        try:
            s_reader, s_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(self._pipe(c_reader, s_writer, True),
                                 self._pipe(s_reader, c_writer, False))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self.tasks.discard(task)
            for w in (c_writer, s_writer):
                if w:
                    w.close()

    async def _pipe(self, reader, writer, up):
        """_pipe - one direction: a reader stamps each chunk, a writer sends it when due."""
        queue = asyncio.Queue()
        loop = asyncio.get_running_loop()

        async def read():
            while True:
                data = await reader.read(65536)
                queue.put_nowait((loop.time() + self.delay_s, data))
                if not data:
                    return

        async def write():
            while True:
                due, data = await queue.get()
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if not data:  # the end of the stream, passed on
                    if writer.can_write_eof():
                        writer.write_eof()
                    return
                writer.write(data)
                self.chunks_up += up
                await writer.drain()

        reading = asyncio.ensure_future(read())
        try:
            await write()
            await reading
        except (OSError, ConnectionError):
            reading.cancel()
            writer.close()
            raise


def main(argv):
    ap = argparse.ArgumentParser(description="a TCP proxy adding DELAY_MS each way")
    ap.add_argument("target_port", type=int)
    ap.add_argument("delay_ms", type=float)
    ap.add_argument("--port", type=int, default=0, help="port to listen on (default: free)")
    ap.add_argument("--target-host", default="127.0.0.1")
    a = ap.parse_args(argv[1:])
    p = DelayProxy(a.target_port, a.delay_ms, a.target_host, a.port)
    print(p.start(), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

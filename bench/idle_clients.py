"""Opens N keep-alive HTTP/1.1 connections to 127.0.0.1:PORT, one request answered on each,
then keeps them idle until stdin closes. Source addresses rotate over 127.0.0.2.. (20,000
connections each) so that ephemeral ports do not run out. Prints "ready N" once all are
idle (or "failed K" for those that could not be opened)."""
import asyncio
import sys


async def one(port, i, conns):
    src = f"127.0.0.{2 + i // 20000}"
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0))
        w.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        await w.drain()
        await asyncio.wait_for(r.readuntil(b"ok\n"), 30)
        conns.append(w)
        return True
    except Exception:
        return False


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    conns = []
    ok = 0
    for start in range(0, n, 500):
        results = await asyncio.gather(*(one(port, i, conns) for i in range(start, min(n, start + 500))))
        ok += sum(results)
    print(f"ready {ok}" if ok == n else f"failed {n - ok}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()


asyncio.run(main())

"""Opens N keep-alive connections to 127.0.0.1:PORT speaking MODE, one request answered on
each, then keeps them idle until stdin closes. MODE is h1 (HTTP/1.1), h2c (HTTP/2 with prior
knowledge), tls-h1 (HTTPS, ALPN http/1.1) or tls-h2 (HTTPS, ALPN h2). Source addresses rotate
over 127.0.0.2.. (20,000 connections each) so that ephemeral ports do not run out. Prints
"ready N" once all are idle (or "failed K" for those that could not be opened)."""
import asyncio
import ssl
import struct
import sys

H1_REQUEST = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
# HPACK: :method GET, :scheme http/https, :path / (static table), :authority "bench" (literal
# without indexing, name index 1).
BLOCK = {False: b"\x82\x86\x84\x01\x05bench", True: b"\x82\x87\x84\x01\x05bench"}


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


async def h2_exchange(r, w, tls):
    w.write(PREFACE + frame(4, 0, 0) + frame(1, 0x5, 1, BLOCK[tls]))
    await w.drain()
    while True:
        head = await r.readexactly(9)
        length = int.from_bytes(head[:3], "big")
        kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
        await r.readexactly(length)
        if kind == 4 and not flags & 1:  # SETTINGS: acknowledge
            w.write(frame(4, 1, 0))
            await w.drain()
        elif kind in (0, 1) and stream == 1 and flags & 1:  # END_STREAM: answered
            return
        elif kind == 3 and stream == 1 or kind == 7:  # RST_STREAM or GOAWAY
            raise ConnectionError("refused")


def tls_context(alpn):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols([alpn])
    return ctx


async def one(port, mode, i, conns, ctx):
    src = f"127.0.0.{2 + i // 20000}"
    try:
        kw = {"ssl": ctx, "server_hostname": "localhost"} if ctx else {}
        r, w = await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0), **kw)
        if mode in ("h1", "tls-h1"):
            w.write(H1_REQUEST)
            await w.drain()
            await asyncio.wait_for(r.readuntil(b"ok\n"), 30)
        else:
            await asyncio.wait_for(h2_exchange(r, w, ctx is not None), 30)
        conns.append(w)
        return True
    except Exception:
        return False


async def main():
    port, n = int(sys.argv[1]), int(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "h1"
    ctx = tls_context("h2" if mode == "tls-h2" else "http/1.1") if mode.startswith("tls") else None
    conns = []
    ok = 0
    for start in range(0, n, 500):
        batch = range(start, min(n, start + 500))
        results = await asyncio.gather(*(one(port, mode, i, conns, ctx) for i in batch))
        ok += sum(results)
    print(f"ready {ok}" if ok == n else f"failed {n - ok}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in conns:
        w.close()


asyncio.run(main())

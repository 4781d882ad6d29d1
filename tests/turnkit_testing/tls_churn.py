"""TLS churn client: ``python tls_churn.py HOST PORT COUNT CONCURRENCY``.

COUNT TLS connections, CONCURRENCY open at a time; each sends one Binding, reads the answer and
closes. Prints ``answered N failed M``. Loopback only; bounded by COUNT and a 30 s timeout per step.
"""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
import struct
import sys

REQUEST = struct.pack("!HH", 1, 0) + b"\x21\x12\xa4\x42" + bytes(range(12))


async def one(host: str, port: int, context: ssl.SSLContext, gate: asyncio.Semaphore) -> bool:
    async with gate:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), 30
            )
            writer.write(REQUEST)
            await asyncio.wait_for(reader.readexactly(20), 30)
            writer.close()
            await asyncio.wait_for(writer.wait_closed(), 30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return False
        return True


async def churn(host: str, port: int, count: int, concurrency: int) -> tuple[int, int]:
    if not ipaddress.ip_address(host).is_loopback:
        raise ValueError(f"{host} is not a loopback address")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(concurrency)
    results = await asyncio.gather(*(one(host, port, context, gate) for _ in range(count)))
    return sum(results), count - sum(results)


if __name__ == "__main__":
    host, port, count, concurrency = sys.argv[1], *map(int, sys.argv[2:5])
    answered, failed = asyncio.run(churn(host, port, count, concurrency))
    print(f"answered {answered} failed {failed}")

"""The ceiling: a grpc.aio server answering every OrganizationService RPC with an empty
response, nothing else. What the Python gRPC stack alone can do on this machine; the
benchmark reports the service as a share of it.

    python -m benchmarks.ceiling --port 7000 --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import signal
from typing import Any

import grpc
from google.protobuf import message_factory
from grpc import aio
from orgs.v1 import organization_service_pb2

SERVICE = organization_service_pb2.DESCRIPTOR.services_by_name["OrganizationService"]


def _handlers() -> grpc.GenericRpcHandler:
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        if method.server_streaming:
            continue
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)()

        async def answer(_request: Any, _context: Any, response: Any = response) -> Any:
            return response

        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            answer,
            request_deserializer=request.FromString,
            response_serializer=type(response).SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE.full_name, handlers)


async def _serve(port: int) -> None:
    server = aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((_handlers(),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(0)


def _worker(port: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.run(_serve(port))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_worker, args=(args.port,)) for _ in range(args.workers)]
    for worker in workers:
        worker.start()

    def stop(_signum: int, _frame: object) -> None:
        for worker in workers:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for worker in workers:
        worker.join()


if __name__ == "__main__":
    main()

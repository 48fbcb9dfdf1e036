"""gRPC entrypoint: servicer, converters, interceptors, error mapping, tokens."""

"""Serving an exported model: `client` (gRPC and REST client of TF Serving, and its command line),
`double` (an in-process test double for tensorflow_model_server), `bench` (serving latency and
throughput)."""

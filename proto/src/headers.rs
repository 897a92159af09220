//! The NATS/1.0 header block (ADR-4). STUB: the proto helper completes this file.

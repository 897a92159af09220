//! `INFO` and `CONNECT` JSON bodies. STUB: the proto helper completes this file.

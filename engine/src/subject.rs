//! Subject and queue-name validation. STUB: the sublist helper writes this.

//! natsd integration tests: one binary, a module per area (STYLE.md section 6).

mod differential;

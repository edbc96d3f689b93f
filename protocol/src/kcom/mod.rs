//! KCOM5 one-shot transfer (WIRE.md §1). Filled in by the KCOM5 issue.

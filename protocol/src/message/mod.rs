//! Typed message frames (WIRE.md §4). Filled in by the foundation issue's message-frame work.

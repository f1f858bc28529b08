//! The sans-IO gateway protocol core.

//! Atelier core.

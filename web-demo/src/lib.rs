//! Atelier web library.

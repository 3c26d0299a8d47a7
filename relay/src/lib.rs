//! Atelier relay library.

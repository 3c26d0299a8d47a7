//! Atelier test helpers.

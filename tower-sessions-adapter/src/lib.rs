//! Use any session-store backend as a tower-sessions store (axum).

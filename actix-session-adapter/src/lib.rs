//! Use any session-store backend as an actix-session store (actix-web).

//! A durable file session store: one file per session, atomic writes, crash safe.

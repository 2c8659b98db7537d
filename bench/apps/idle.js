// An idle app: keeps the event loop alive and does nothing.
setInterval(() => {}, 1 << 30);

/*
 * notify.h: tells the service manager (systemd, Type=notify) where the
 * process is in its life, through $NOTIFY_SOCKET.  Without that variable
 * every call does nothing, so postern behaves the same outside systemd.
 */
#ifndef POSTERN_NOTIFY_H
#define POSTERN_NOTIFY_H

/* Listeners are bound and the workers run: READY=1.  Also after a reload. */
void notify_ready(void);

/* A SIGHUP reload starts: RELOADING=1 (notify_ready() ends it). */
void notify_reloading(void);

/* SIGTERM or SIGINT: STOPPING=1, before listeners close. */
void notify_stopping(void);

#endif

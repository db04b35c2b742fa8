/*
 * notify.c: sd_notify(3) messages for systemd's Type=notify.  Called from
 * main's thread only; a failed or absent notification changes nothing (the
 * daemon runs the same without a service manager).
 */
#include <time.h>

#include <systemd/sd-daemon.h>

#include "notify.h"

void
notify_ready(void)
{
	(void)sd_notify(0, "READY=1\nSTATUS=accepting connections");
}

void
notify_reloading(void)
{
	struct timespec ts;

	/* MONOTONIC_USEC: systemd 253's Type=notify-reload wants it; older
	 * managers ignore it. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	(void)sd_notifyf(0, "RELOADING=1\nSTATUS=reloading\nMONOTONIC_USEC=%llu",
	                 (unsigned long long)ts.tv_sec * 1000000ULL +
	                     (unsigned long long)ts.tv_nsec / 1000ULL);
}

void
notify_stopping(void)
{
	(void)sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

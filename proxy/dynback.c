/* dynback.c: backends named by address (see dynback.h). */

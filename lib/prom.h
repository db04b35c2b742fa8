/*
 * prom.h: the Prometheus text exposition format (version 0.0.4) as pure
 * functions over a FILE: HELP/TYPE headers, samples with escaped label
 * values, histograms from per-bucket counts, and the bucket search.  No
 * globals, no clock, no sockets; what the numbers mean is the caller's.
 */
#ifndef POSTERN_PROM_H
#define POSTERN_PROM_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PROM_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define PROM_LABELS_MAX   8 /* labels of one sample, "le" included */

struct prom_label {
	const char *name;  /* [a-zA-Z_][a-zA-Z0-9_]*, never escaped */
	const char *value; /* any text: escaped on output */
};

/* "# HELP name help" (help escaped) and "# TYPE name type". */
void prom_header(FILE *f, const char *name, const char *type, const char *help);

/* One sample line: name{a="x",b="y"} value.  Labels past PROM_LABELS_MAX
 * are left out.  The _u64 form keeps counters exact beyond 2^53. */
void prom_sample(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
                 double value);
void prom_sample_u64(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
                     uint64_t value);

/*
 * A histogram's lines from counts[0..nb]: counts[i] holds the observations
 * of bucket i alone (bounds[i-1] < v <= bounds[i]), counts[nb] those above
 * bounds[nb-1].  Writes name_bucket{...,le="b"} cumulated, le="+Inf", then
 * name_sum and name_count (equal to the +Inf bucket).  bounds ascend.
 */
void prom_histogram(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
                    const double *bounds, size_t nb, const uint64_t *counts, double sum);

/* The bucket of v: the first i with v <= bounds[i], or nb when v is above
 * every bound (or NaN). */
size_t prom_bucket(const double *bounds, size_t nb, double v);

/* Escape a label value into dst (always NUL-terminated, cut to fit):
 * backslash, double quote and line feed become \\, \" and \n.  Returns dst. */
const char *prom_escape(char *dst, size_t dstlen, const char *src);

#endif

/*
 * prom.c: the Prometheus text format, version 0.0.4 (see prom.h).  Writes
 * only through the FILE it is given; keeps nothing between calls.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "prom.h"

/* Escape src into dst; help text escapes only backslash and line feed
 * (exposition format: "HELP lines ... and label values"). */
static const char *
escape(char *dst, size_t dstlen, const char *src, bool quotes)
{
	size_t o = 0;

	if (dstlen == 0)
		return dst;
	for (; *src != '\0'; src++) {
		char e = *src == '\\' ? '\\' : *src == '\n' ? 'n' : quotes && *src == '"' ? '"' : 0;
		size_t need = e ? 2 : 1;

		if (o + need >= dstlen)
			break;
		if (e) {
			dst[o++] = '\\';
			dst[o++] = e;
		} else {
			dst[o++] = *src;
		}
	}
	dst[o] = '\0';
	return dst;
}

const char *
prom_escape(char *dst, size_t dstlen, const char *src)
{
	return escape(dst, dstlen, src, true);
}

void
prom_header(FILE *f, const char *name, const char *type, const char *help)
{
	char h[512];

	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, escape(h, sizeof(h), help, false), name,
	        type);
}

static void
labels_out(FILE *f, const char *name, const struct prom_label *labels, size_t n)
{
	fputs(name, f);
	if (n > PROM_LABELS_MAX)
		n = PROM_LABELS_MAX;
	for (size_t i = 0; i < n; i++) {
		char v[512];
		fprintf(f, "%s%s=\"%s\"", i == 0 ? "{" : ",", labels[i].name,
		        prom_escape(v, sizeof(v), labels[i].value ? labels[i].value : ""));
	}
	if (n > 0)
		fputc('}', f);
}

/* Go's ParseFloat reads these; "+Inf", "-Inf" and "NaN" as the format says. */
static void
value_out(FILE *f, double v)
{
	if (isnan(v))
		fputs(" NaN\n", f);
	else if (isinf(v))
		fputs(v > 0 ? " +Inf\n" : " -Inf\n", f);
	else
		fprintf(f, " %.15g\n", v);
}

void
prom_sample(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
            double value)
{
	labels_out(f, name, labels, nlabels);
	value_out(f, value);
}

void
prom_sample_u64(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
                uint64_t value)
{
	labels_out(f, name, labels, nlabels);
	fprintf(f, " %llu\n", (unsigned long long)value);
}

void
prom_histogram(FILE *f, const char *name, const struct prom_label *labels, size_t nlabels,
               const double *bounds, size_t nb, const uint64_t *counts, double sum)
{
	struct prom_label l[PROM_LABELS_MAX];
	char metric[128], le[32];
	uint64_t cum = 0;
	size_t n = nlabels < PROM_LABELS_MAX - 1 ? nlabels : PROM_LABELS_MAX - 1;

	if (n > 0) /* labels may be NULL with none */
		memcpy(l, labels, n * sizeof(*l));
	l[n].name = "le";
	snprintf(metric, sizeof(metric), "%s_bucket", name);
	for (size_t i = 0; i <= nb; i++) {
		cum += counts[i];
		if (i < nb)
			snprintf(le, sizeof(le), "%.15g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		l[n].value = le;
		prom_sample_u64(f, metric, l, n + 1, cum);
	}
	snprintf(metric, sizeof(metric), "%s_sum", name);
	prom_sample(f, metric, labels, n, sum);
	snprintf(metric, sizeof(metric), "%s_count", name);
	prom_sample_u64(f, metric, labels, n, cum);
}

size_t
prom_bucket(const double *bounds, size_t nb, double v)
{
	size_t lo = 0, hi = nb;

	if (isnan(v))
		return nb;
	/* the first bound >= v: a value on a bound belongs to that bucket (le) */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (v <= bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

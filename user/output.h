/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Output for status/stats/flows: aligned text tables for people, a tiny
 * JSON emitter for scripts (always valid JSON: strings are escaped and
 * invalid UTF-8 is replaced), and the one table of verdict reason names.
 */
#ifndef PH_USER_OUTPUT_H
#define PH_USER_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>
#include <pinhole/pinhole.h>

/* Verdict reasons, from the X-macros of pinhole.h. */
struct ph_reason_info {
	const char *name; /* "drop_policy" */
	const char *text; /* "no service rule; default drop" */
};
extern const struct ph_reason_info ph_reasons[PH_R_MAX];

/* ---- JSON ---- */
#define PH_JSON_MAX_DEPTH 16

struct ph_json {
	FILE *out;
	int depth;
	bool first[PH_JSON_MAX_DEPTH];
	bool after_key;
	bool compact; /* one line (JSON Lines), set after ph_json_init */
};

void ph_json_init(struct ph_json *j, FILE *out);
void ph_json_object_begin(struct ph_json *j);
void ph_json_object_end(struct ph_json *j);
void ph_json_array_begin(struct ph_json *j);
void ph_json_array_end(struct ph_json *j);
void ph_json_key(struct ph_json *j, const char *key);
void ph_json_string(struct ph_json *j, const char *s);
void ph_json_uint(struct ph_json *j, __u64 v);
void ph_json_int(struct ph_json *j, long long v);
void ph_json_bool(struct ph_json *j, bool v);
void ph_json_null(struct ph_json *j);
/* Ends the document with a newline. */
void ph_json_finish(struct ph_json *j);

/* key + value shorthands */
void ph_json_kv_string(struct ph_json *j, const char *k, const char *v);
void ph_json_kv_uint(struct ph_json *j, const char *k, __u64 v);
void ph_json_kv_bool(struct ph_json *j, const char *k, bool v);
/* k: {"packets": N, "bytes": N} */
void ph_json_kv_counter(struct ph_json *j, const char *k,
			const struct ph_counter *c);

/* ---- tables ---- */
#define PH_TABLE_MAX_COLS 10

struct ph_table {
	int ncols;
	const char *headers[PH_TABLE_MAX_COLS];
	bool right[PH_TABLE_MAX_COLS]; /* right-align (numbers) */
	int nrows, cap;
	char **cells; /* nrows * ncols, owned */
};

/* headers: a "|" prefix right-aligns the column ("|PACKETS"). */
void ph_table_init(struct ph_table *t, int ncols, const char *const *headers);
/* Adds a row of ncols strings (copied). Returns -ENOMEM on failure. */
int ph_table_add(struct ph_table *t, const char *const *cells);
void ph_table_print(const struct ph_table *t, FILE *out, const char *indent);
void ph_table_free(struct ph_table *t);

#endif /* PH_USER_OUTPUT_H */

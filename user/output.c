// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

#define PH_X_INFO(e, n, t) [PH_R_##e] = { n, t },
const struct ph_reason_info ph_reasons[PH_R_MAX] = {
	PH_PASS_REASONS(PH_X_INFO)
	PH_DROP_REASONS(PH_X_INFO)
};
#undef PH_X_INFO

/* ---------------------------------------------------------------- JSON */

void ph_json_init(struct ph_json *j, FILE *out)
{
	memset(j, 0, sizeof(*j));
	j->out = out;
	j->first[0] = true;
}

static void indent(struct ph_json *j)
{
	if (j->compact) {
		if (j->depth && !j->after_key)
			fputc(' ', j->out);
		return;
	}
	fputc('\n', j->out);
	for (int i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Separator and indentation before a value or a key. */
static void before_item(struct ph_json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth == 0)
		return;
	if (!j->first[j->depth])
		fputc(',', j->out);
	j->first[j->depth] = false;
	indent(j);
}

static void open_scope(struct ph_json *j, char c)
{
	before_item(j);
	fputc(c, j->out);
	if (j->depth + 1 < PH_JSON_MAX_DEPTH)
		j->depth++;
	j->first[j->depth] = true;
}

static void close_scope(struct ph_json *j, char c)
{
	bool empty = j->first[j->depth];

	if (j->depth > 0)
		j->depth--;
	if (!empty)
		indent(j);
	fputc(c, j->out);
}

void ph_json_object_begin(struct ph_json *j) { open_scope(j, '{'); }
void ph_json_object_end(struct ph_json *j) { close_scope(j, '}'); }
void ph_json_array_begin(struct ph_json *j) { open_scope(j, '['); }
void ph_json_array_end(struct ph_json *j) { close_scope(j, ']'); }

/* Length of a valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static int utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	int n;
	unsigned int cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static void put_escaped(FILE *out, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', out);
	while (*s) {
		int n;

		switch (*s) {
		case '"': fputs("\\\"", out); s++; continue;
		case '\\': fputs("\\\\", out); s++; continue;
		case '\n': fputs("\\n", out); s++; continue;
		case '\r': fputs("\\r", out); s++; continue;
		case '\t': fputs("\\t", out); s++; continue;
		}
		if (*s < 0x20 || *s == 0x7f) {
			fprintf(out, "\\u%04x", *s);
			s++;
			continue;
		}
		n = utf8_len(s);
		if (!n) {
			fputs("\\ufffd", out); /* invalid byte */
			s++;
			continue;
		}
		fwrite(s, 1, (size_t)n, out);
		s += n;
	}
	fputc('"', out);
}

void ph_json_key(struct ph_json *j, const char *key)
{
	before_item(j);
	put_escaped(j->out, key);
	fputs(": ", j->out);
	j->after_key = true;
}

void ph_json_string(struct ph_json *j, const char *s)
{
	before_item(j);
	put_escaped(j->out, s ? s : "");
}

void ph_json_uint(struct ph_json *j, __u64 v)
{
	before_item(j);
	fprintf(j->out, "%llu", (unsigned long long)v);
}

void ph_json_int(struct ph_json *j, long long v)
{
	before_item(j);
	fprintf(j->out, "%lld", v);
}

void ph_json_bool(struct ph_json *j, bool v)
{
	before_item(j);
	fputs(v ? "true" : "false", j->out);
}

void ph_json_null(struct ph_json *j)
{
	before_item(j);
	fputs("null", j->out);
}

void ph_json_finish(struct ph_json *j)
{
	fputc('\n', j->out);
	fflush(j->out);
}

void ph_json_kv_counter(struct ph_json *j, const char *k,
			const struct ph_counter *c)
{
	ph_json_key(j, k);
	ph_json_object_begin(j);
	ph_json_kv_uint(j, "packets", c->packets);
	ph_json_kv_uint(j, "bytes", c->bytes);
	ph_json_object_end(j);
}

void ph_json_kv_string(struct ph_json *j, const char *k, const char *v)
{
	ph_json_key(j, k);
	ph_json_string(j, v);
}

void ph_json_kv_uint(struct ph_json *j, const char *k, __u64 v)
{
	ph_json_key(j, k);
	ph_json_uint(j, v);
}

void ph_json_kv_bool(struct ph_json *j, const char *k, bool v)
{
	ph_json_key(j, k);
	ph_json_bool(j, v);
}

/* -------------------------------------------------------------- tables */

void ph_table_init(struct ph_table *t, int ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols > PH_TABLE_MAX_COLS ? PH_TABLE_MAX_COLS : ncols;
	for (int c = 0; c < t->ncols; c++) {
		t->right[c] = headers[c][0] == '|';
		t->headers[c] = headers[c] + t->right[c];
	}
}

int ph_table_add(struct ph_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		int cap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, sizeof(*n) * (size_t)cap *
						     (size_t)t->ncols);

		if (!n)
			return -ENOMEM;
		t->cells = n;
		t->cap = cap;
	}
	for (int c = 0; c < t->ncols; c++) {
		char *s = strdup(cells[c] ? cells[c] : "");

		if (!s) {
			while (c--)
				free(t->cells[t->nrows * t->ncols + c]);
			return -ENOMEM;
		}
		t->cells[t->nrows * t->ncols + c] = s;
	}
	t->nrows++;
	return 0;
}

static void print_row(const struct ph_table *t, FILE *out, const char *ind,
		      const char *const *cells, const int *w)
{
	fputs(ind, out);
	for (int c = 0; c < t->ncols; c++) {
		bool last = c == t->ncols - 1;

		if (t->right[c])
			fprintf(out, "%*s", w[c], cells[c]);
		else if (last)
			fputs(cells[c], out);
		else
			fprintf(out, "%-*s", w[c], cells[c]);
		if (!last)
			fputs("  ", out);
	}
	fputc('\n', out);
}

void ph_table_print(const struct ph_table *t, FILE *out, const char *ind)
{
	int w[PH_TABLE_MAX_COLS];

	if (!ind)
		ind = "";
	for (int c = 0; c < t->ncols; c++) {
		w[c] = (int)strlen(t->headers[c]);
		for (int r = 0; r < t->nrows; r++) {
			int l = (int)strlen(t->cells[r * t->ncols + c]);

			if (l > w[c])
				w[c] = l;
		}
	}
	print_row(t, out, ind, t->headers, w);
	for (int r = 0; r < t->nrows; r++)
		print_row(t, out, ind,
			  (const char *const *)&t->cells[r * t->ncols], w);
}

void ph_table_free(struct ph_table *t)
{
	for (int i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

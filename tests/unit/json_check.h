/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A strict JSON syntax checker for tests (RFC 8259 grammar; strings must be
 * valid UTF-8 with no raw control characters). json_valid() returns true
 * when the whole text is exactly one JSON value, optionally surrounded by
 * whitespace. Depth is bounded so hostile input cannot blow the stack.
 */
#ifndef PH_TESTS_JSON_CHECK_H
#define PH_TESTS_JSON_CHECK_H

#include <stdbool.h>
#include <string.h>

struct json_cur {
	const char *s, *end;
	int depth;
};

static bool json_value(struct json_cur *c);

static void json_ws(struct json_cur *c)
{
	while (c->s < c->end &&
	       (*c->s == ' ' || *c->s == '\t' || *c->s == '\n' || *c->s == '\r'))
		c->s++;
}

static bool json_lit(struct json_cur *c, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(c->end - c->s) < n || memcmp(c->s, lit, n))
		return false;
	c->s += n;
	return true;
}

static bool json_is_hex(char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
	       (ch >= 'A' && ch <= 'F');
}

static bool json_string(struct json_cur *c)
{
	if (c->s >= c->end || *c->s != '"')
		return false;
	c->s++;
	while (c->s < c->end) {
		unsigned char ch = (unsigned char)*c->s;

		if (ch == '"') {
			c->s++;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch == '\\') {
			int i;

			if (++c->s >= c->end)
				return false;
			if (strchr("\"\\/bfnrt", *c->s) && *c->s) {
				c->s++;
				continue;
			}
			if (*c->s != 'u' || c->end - c->s < 5)
				return false;
			for (i = 1; i <= 4; i++)
				if (!json_is_hex(c->s[i]))
					return false;
			c->s += 5;
			continue;
		}
		if (ch >= 0x80) {
			int l = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc2 ? 2 : 0;
			int i;

			if (!l || ch > 0xf4 || c->end - c->s < l)
				return false;
			for (i = 1; i < l; i++)
				if (((unsigned char)c->s[i] & 0xc0) != 0x80)
					return false;
			c->s += l;
			continue;
		}
		c->s++;
	}
	return false;
}

static bool json_digits(struct json_cur *c)
{
	const char *st = c->s;

	while (c->s < c->end && *c->s >= '0' && *c->s <= '9')
		c->s++;
	return c->s > st;
}

static bool json_number(struct json_cur *c)
{
	if (c->s < c->end && *c->s == '-')
		c->s++;
	if (c->s < c->end && *c->s == '0')
		c->s++;
	else if (!json_digits(c))
		return false;
	if (c->s < c->end && *c->s == '.') {
		c->s++;
		if (!json_digits(c))
			return false;
	}
	if (c->s < c->end && (*c->s == 'e' || *c->s == 'E')) {
		c->s++;
		if (c->s < c->end && (*c->s == '+' || *c->s == '-'))
			c->s++;
		if (!json_digits(c))
			return false;
	}
	return true;
}

static bool json_members(struct json_cur *c, bool object)
{
	char close = object ? '}' : ']';

	c->s++;
	json_ws(c);
	if (c->s < c->end && *c->s == close) {
		c->s++;
		return true;
	}
	for (;;) {
		json_ws(c);
		if (object) {
			if (!json_string(c))
				return false;
			json_ws(c);
			if (c->s >= c->end || *c->s != ':')
				return false;
			c->s++;
		}
		if (!json_value(c))
			return false;
		json_ws(c);
		if (c->s >= c->end)
			return false;
		if (*c->s == close) {
			c->s++;
			return true;
		}
		if (*c->s != ',')
			return false;
		c->s++;
	}
}

static bool json_value(struct json_cur *c)
{
	bool ok;

	json_ws(c);
	if (c->s >= c->end)
		return false;
	switch (*c->s) {
	case '{':
	case '[':
		if (++c->depth > 64)
			return false;
		ok = json_members(c, *c->s == '{');
		c->depth--;
		return ok;
	case '"':
		return json_string(c);
	case 't':
		return json_lit(c, "true");
	case 'f':
		return json_lit(c, "false");
	case 'n':
		return json_lit(c, "null");
	default:
		return json_number(c);
	}
}

static inline bool json_valid(const char *text, size_t len)
{
	struct json_cur c = { text, text + len, 0 };

	if (!json_value(&c))
		return false;
	json_ws(&c);
	return c.s == c.end;
}

#endif /* PH_TESTS_JSON_CHECK_H */

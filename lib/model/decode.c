/* Typed JSON field reads with field paths and collected errors. */
#include "model/decode.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/duration.h"
#include "json/json.h"

void dec_init(pl_dec *d, pl_arena *a, pl_errors *errs)
{
	d->arena = a;
	d->errs = errs;
	d->path[0] = '\0';
	d->len = 0;
}

static void path_append(pl_dec *d, const char *s)
{
	size_t n = strlen(s);

	if (d->len + n >= sizeof(d->path))
		n = sizeof(d->path) - 1 - d->len;
	memcpy(d->path + d->len, s, n);
	d->len += n;
	d->path[d->len] = '\0';
}

size_t dec_enter(pl_dec *d, const char *key)
{
	size_t saved = d->len;

	if (d->len > 0)
		path_append(d, ".");
	path_append(d, key);
	return saved;
}

size_t dec_enter_index(pl_dec *d, size_t i)
{
	char idx[32];
	size_t saved = d->len;

	snprintf(idx, sizeof(idx), "[%zu]", i);
	path_append(d, idx);
	return saved;
}

size_t dec_enter_key(pl_dec *d, const char *key)
{
	size_t saved = d->len;

	path_append(d, "[");
	path_append(d, key);
	path_append(d, "]");
	return saved;
}

void dec_leave(pl_dec *d, size_t saved)
{
	d->len = saved;
	d->path[saved] = '\0';
}

/* One error, one line: control characters from hostile keys or values cannot forge output lines. */
static const char *one_line(pl_arena *a, const char *s)
{
	char *p = pl_arena_strdup(a, s);

	for (char *c = p; *c; c++)
		*c = ((unsigned char)*c < 0x20 || *c == 0x7f) ? '?' : *c;
	return p;
}

static void add_error(pl_dec *d, const char *path, const char *msg)
{
	pl_errors *e = d->errs;

	if (e->n == e->_cap) {
		size_t cap = e->_cap ? e->_cap * 2 : 8;
		pl_error *v = pl_arena_calloc(d->arena, cap, sizeof(*v));
		if (e->n)
			memcpy(v, e->v, e->n * sizeof(*v));
		e->v = v;
		e->_cap = cap;
	}
	e->v[e->n].path = one_line(d->arena, path);
	e->v[e->n].msg = one_line(d->arena, msg);
	e->n++;
}

void dec_error(pl_dec *d, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	add_error(d, d->path, msg);
}

void dec_error_at(pl_dec *d, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	size_t saved = dec_enter(d, key);

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	add_error(d, d->path, msg);
	dec_leave(d, saved);
}

bool dec_has(const json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return v && !json_is_null(v);
}

/* Edit distance between a and b, case-insensitive, adjacent swaps counting one (optimal string
 * alignment); names longer than 63 bytes are never close. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), d[64][64];

	if (la > 63 || lb > 63)
		return SIZE_MAX;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]);
			size_t best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best)
				best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best)
				best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && tolower((unsigned char)a[i - 1]) == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == tolower((unsigned char)b[j - 1]) && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[la][lb];
}

const char *dec_closest_key(const char *key, const char *const *known)
{
	const char *best = NULL;
	size_t best_d = SIZE_MAX, len = strlen(key);
	/* A third of the name, at least one edit: "rotues" -> routes, "timout" -> timeout, "colour" -> none. */
	size_t limit = len / 3 > 1 ? len / 3 : 1;

	for (const char *const *k = known; *k; k++) {
		size_t dist = edit_distance(key, *k);
		if (dist < best_d) {
			best_d = dist;
			best = *k;
		}
	}
	return best_d <= limit ? best : NULL;
}

void dec_known_keys(pl_dec *d, const json_t *obj, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)obj, key, v) {
		const char *const *k = known;
		while (*k && strcmp(*k, key) != 0)
			k++;
		if (*k)
			continue;
		const char *near = dec_closest_key(key, known);
		if (near)
			dec_error_at(d, key, "unknown field, did you mean \"%s\"?", near);
		else
			dec_error_at(d, key, "unknown field");
	}
}

static const char *type_word(json_type t)
{
	switch (t) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	default: return "a boolean";
	}
}

/* Fetches key; false when absent/null (error if required) or of another type (error). */
static bool get_typed(pl_dec *d, const json_t *obj, const char *key, bool required, json_type t,
		      json_t **out)
{
	json_t *v = json_object_get(obj, key);
	char got[96];

	if (!v || json_is_null(v)) {
		if (required)
			dec_error_at(d, key, "is required");
		return false;
	}
	bool ok = t == JSON_TRUE ? json_is_boolean(v) : t == JSON_REAL ? json_is_number(v) : json_typeof(v) == t;
	if (!ok) {
		pl_json_describe(v, got, sizeof(got));
		dec_error_at(d, key, "must be %s, got %s", type_word(t), got);
		return false;
	}
	*out = v;
	return true;
}

bool dec_is_object(pl_dec *d, const json_t *v)
{
	char got[96];

	if (json_is_object(v))
		return true;
	pl_json_describe(v, got, sizeof(got));
	dec_error(d, "must be an object, got %s", got);
	return false;
}

bool dec_object(pl_dec *d, const json_t *obj, const char *key, bool required, json_t **out)
{
	return get_typed(d, obj, key, required, JSON_OBJECT, out);
}

bool dec_list(pl_dec *d, const json_t *obj, const char *key, bool required, size_t min, size_t max,
	      json_t **out)
{
	json_t *v;

	if (!get_typed(d, obj, key, required, JSON_ARRAY, &v))
		return false;
	size_t n = json_array_size(v);
	if (n < min) {
		dec_error_at(d, key, "must have at least %zu item%s", min, min == 1 ? "" : "s");
		return false;
	}
	if (max && n > max) {
		dec_error_at(d, key, "must have at most %zu items, got %zu", max, n);
		return false;
	}
	*out = v;
	return true;
}

bool dec_string_value(pl_dec *d, const json_t *v, size_t maxlen, pl_str_check check, const char *what,
		      const char **out)
{
	char got[96];

	if (!json_is_string(v)) {
		pl_json_describe(v, got, sizeof(got));
		dec_error(d, "must be a string, got %s", got);
		return false;
	}
	const char *s = json_string_value(v);
	size_t n = json_string_length(v);
	if (memchr(s, '\0', n)) {
		dec_error(d, "must not contain NUL characters");
		return false;
	}
	if (maxlen && n > maxlen) {
		dec_error(d, "must be at most %zu characters, got %zu", maxlen, n);
		return false;
	}
	if (check && !check(s)) {
		pl_json_describe(v, got, sizeof(got));
		dec_error(d, "must match %s, got %s", what, got);
		return false;
	}
	*out = pl_arena_strndup(d->arena, s, n);
	return true;
}

bool dec_string(pl_dec *d, const json_t *obj, const char *key, bool required, size_t maxlen,
		pl_str_check check, const char *what, const char **out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			dec_error_at(d, key, "is required");
		return false;
	}
	size_t saved = dec_enter(d, key);
	bool ok = dec_string_value(d, v, maxlen, check, what, out);
	dec_leave(d, saved);
	return ok;
}

bool dec_int(pl_dec *d, const json_t *obj, const char *key, bool required, int min, int max, int *out)
{
	json_t *v;

	if (!get_typed(d, obj, key, required, JSON_INTEGER, &v))
		return false;
	json_int_t n = json_integer_value(v);
	if (n < min || n > max) {
		dec_error_at(d, key, "must be between %d and %d, got %" JSON_INTEGER_FORMAT, min, max, n);
		return false;
	}
	*out = (int)n;
	return true;
}

bool dec_int64(pl_dec *d, const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
	       int64_t *out)
{
	json_t *v;

	if (!get_typed(d, obj, key, required, JSON_INTEGER, &v))
		return false;
	json_int_t n = json_integer_value(v);
	if (n < min || n > max) {
		dec_error_at(d, key, "must be between %" PRId64 " and %" PRId64 ", got %" JSON_INTEGER_FORMAT, min,
			     max, n);
		return false;
	}
	*out = n;
	return true;
}

bool dec_number(pl_dec *d, const json_t *obj, const char *key, bool required, double min, double max,
		double *out)
{
	json_t *v;

	if (!get_typed(d, obj, key, required, JSON_REAL, &v))
		return false;
	double x = json_number_value(v);
	if (!(x >= min && x <= max)) {
		dec_error_at(d, key, "must be between %g and %g, got %g", min, max, x);
		return false;
	}
	*out = x;
	return true;
}

bool dec_bool(pl_dec *d, const json_t *obj, const char *key, bool required, bool *out)
{
	json_t *v;

	if (!get_typed(d, obj, key, required, JSON_TRUE, &v))
		return false;
	*out = json_is_true(v);
	return true;
}

bool dec_duration(pl_dec *d, const json_t *obj, const char *key, bool required, int64_t min_ns,
		  int64_t max_ns, int64_t *out)
{
	const char *s;
	int64_t ns;
	char lo[32], hi[32];

	if (!dec_string(d, obj, key, required, 0, NULL, NULL, &s))
		return false;
	int rc = pl_duration_parse(s, &ns);
	if (rc != 0) {
		char got[96];
		pl_json_describe(json_object_get(obj, key), got, sizeof(got));
		if (rc == -ERANGE)
			dec_error_at(d, key, "must be a duration of at most 2562047h, got %s", got);
		else
			dec_error_at(d, key, "must be a duration such as 250ms or 1m30s, got %s", got);
		return false;
	}
	if (max_ns && (ns < min_ns || ns > max_ns)) {
		pl_duration_format(min_ns, lo, sizeof(lo));
		pl_duration_format(max_ns, hi, sizeof(hi));
		dec_error_at(d, key, "must be between %s and %s, got %s", lo, hi, s);
		return false;
	}
	*out = ns;
	return true;
}

bool dec_enum_value(pl_dec *d, const json_t *v, const char *const *names, int *out)
{
	char got[96], list[256];
	size_t off = 0;

	if (json_is_string(v)) {
		for (int i = 0; names[i]; i++) {
			if (strcmp(names[i], json_string_value(v)) == 0) {
				*out = i;
				return true;
			}
		}
	}
	list[0] = '\0';
	for (int i = 0; names[i] && off < sizeof(list); i++)
		off += (size_t)snprintf(list + off, sizeof(list) - off, "%s%s", i ? ", " : "", names[i]);
	pl_json_describe(v, got, sizeof(got));
	dec_error(d, "must be one of %s, got %s", list, got);
	return false;
}

bool dec_enum(pl_dec *d, const json_t *obj, const char *key, bool required, const char *const *names,
	      int *out)
{
	json_t *v = json_object_get(obj, key);

	if (!v || json_is_null(v)) {
		if (required)
			dec_error_at(d, key, "is required");
		return false;
	}
	size_t saved = dec_enter(d, key);
	bool ok = dec_enum_value(d, v, names, out);
	dec_leave(d, saved);
	return ok;
}

/* ---- pattern twins of the CRD ---- */

static bool is_lower_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* [a-z0-9]([-a-z0-9]*[a-z0-9])? over s[0..n), no length cap */
static bool label_span(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum(s[0]) || !is_lower_alnum(s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!is_lower_alnum(s[i]) && s[i] != '-')
			return false;
	}
	return true;
}

bool pl_is_dns1123_label(const char *s)
{
	size_t n = strlen(s);
	return n <= 63 && label_span(s, n);
}

bool pl_is_dns1035_label(const char *s)
{
	return pl_is_dns1123_label(s) && s[0] >= 'a' && s[0] <= 'z';
}

bool pl_is_dns1123_subdomain(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return false;
	for (const char *p = s;;) {
		const char *dot = strchr(p, '.');
		size_t len = dot ? (size_t)(dot - p) : strlen(p);
		if (!label_span(p, len))
			return false;
		if (!dot)
			return true;
		p = dot + 1;
	}
}

/* ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 */
static bool qualified_name(const char *s, size_t n, bool allow_empty)
{
	if (n == 0)
		return allow_empty;
	if (n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!isalnum(c) || c > 0x7f) {
			if (c != '-' && c != '_' && c != '.')
				return false;
		}
	}
	return true;
}

bool pl_is_label_key(const char *s)
{
	const char *slash = strchr(s, '/');

	if (!slash)
		return qualified_name(s, strlen(s), false);
	char prefix[254];
	size_t plen = (size_t)(slash - s);
	if (plen == 0 || plen >= sizeof(prefix))
		return false;
	memcpy(prefix, s, plen);
	prefix[plen] = '\0';
	return pl_is_dns1123_subdomain(prefix) && qualified_name(slash + 1, strlen(slash + 1), false);
}

bool pl_is_pod_id(const char *s)
{
	return *s == '\0' || (strlen(s) <= PL_POD_ID_MAX && pl_is_dns1123_label(s));
}

bool pl_is_label_value(const char *s)
{
	return qualified_name(s, strlen(s), true);
}

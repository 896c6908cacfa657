/* Reading and weighing an entry, the parts compiled: the words of a plain ASCII sentence
 * (monitor/events/textfeatures.py has the same in Python: ascii_words_py), the tokens of an
 * ASCII sentence with digits (ascii_tokens_py), a sentence's tokens
 * (monitor/events/reading.py: sentence_parts_py, with name_pairs), whole ASCII sentences with
 * their keys (sentence_fields_py, _sentence and _key: BLAKE2b as RFC 7693 gives it), what an
 * entry's features keep of its reading (monitor/events/similarity.py: kept_text_py) and an
 * entry's tf-idf vector (count_and_vectorize_py).
 *
 * Each returns exactly what its Python twin returns: the same strings (the token cache's own
 * objects, or joined from them) and the same doubles (the same operations in the same order,
 * libm's log and sqrt as Python's math calls them; the build turns off fused multiply-add), in
 * the same order. The Python twins spend most of their time in the calls between builtins.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static PyObject *str_isupper, *str_space, *str_unit, *str_nine;

/* PyObject_IsTrue, for the cache's str, None and bool fields */
static inline int truthy(PyObject *o) {
    if (o == Py_None || o == Py_False) return 0;
    if (o == Py_True) return 1;
    if (PyUnicode_CheckExact(o)) return PyUnicode_GET_LENGTH(o) > 0;
    return PyObject_IsTrue(o);
}

static int append_joined(PyObject *out, PyObject *run) {
    PyObject *s = PyUnicode_Join(str_space, run);
    if (s == NULL) return -1;
    int rc = PyList_Append(out, s);
    Py_DECREF(s);
    return rc;
}

static PyObject *as_tuple(PyObject *list) {
    if (list == NULL) return NULL;
    PyObject *t = PyList_AsTuple(list);
    Py_DECREF(list);
    return t;
}

PyDoc_STRVAR(sentence_parts_doc,
"sentence_parts(raw, tokens, title_words, day_or_month) -> (low, text, terms, names, lower, pairs,\n"
"day_words, kept)\n\nSee monitor.events.reading.sentence_parts_py.");

/* What the parts need of one token: its TokenInfo (low, term, capital, lower), held, and these flags */
enum {
    T_TERM = 1,        /* its term is true (a term, not None or "") */
    T_SOME_TERM = 2,   /* its term is not None */
    T_CAPITAL = 4,     /* it starts with a capital */
    T_LOWER = 8,       /* it starts with a lower-case letter */
    T_DAY = 16,        /* in lower case, it names a day or a month (`day_or_month`) */
    T_AFTER_NINE = 32, /* in lower case, it sorts after "9": no number */
    T_SHOUTING = 64,   /* longer than one character, and str.isupper() */
};

typedef struct {
    PyObject *info; /* a strong reference */
    int flags;
} tok_t;

/* The cache's info for `tok`, checked: a new reference, or NULL with an error set */
static PyObject *info_of(PyObject *cache, PyObject *tok) {
    PyObject *info = PyObject_GetItem(cache, tok);
    if (info == NULL) return NULL;
    if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) < 4 || !PyUnicode_Check(PyTuple_GET_ITEM(info, 0))) {
        Py_DECREF(info);
        PyErr_SetString(PyExc_TypeError, "sentence_parts: the cache must give (low, term, capital, lower)");
        return NULL;
    }
    return info;
}

/* The flags of a token with this info, but T_SHOUTING (which depends on the token as written);
 * -1 with an error set */
static int info_flags(PyObject *info, PyObject *dom) {
    PyObject *l = PyTuple_GET_ITEM(info, 0), *term = PyTuple_GET_ITEM(info, 1);
    int has_term = truthy(term);
    if (has_term < 0) return -1;
    int capital = truthy(PyTuple_GET_ITEM(info, 2));
    if (capital < 0) return -1;
    int lower_case = truthy(PyTuple_GET_ITEM(info, 3));
    if (lower_case < 0) return -1;
    int day_or_month = PySet_Contains(dom, l);
    if (day_or_month < 0) return -1;
    int after_nine = PyUnicode_Compare(l, str_nine) > 0;
    if (PyErr_Occurred()) return -1;
    return (has_term ? T_TERM : 0) | (term != Py_None ? T_SOME_TERM : 0) | (capital ? T_CAPITAL : 0)
           | (lower_case ? T_LOWER : 0) | (day_or_month ? T_DAY : 0) | (after_nine ? T_AFTER_NINE : 0);
}

/* The parts of a sentence of n tokens (see sentence_parts_py), from their infos and flags */
static PyObject *parts_core(Py_ssize_t n, const tok_t *toks, PyObject *title_words) {
    PyObject *low = NULL, *text = NULL, *terms = NULL, *names = NULL, *lower = NULL, *pairs = NULL,
             *run = NULL, *days = NULL, *kept = NULL, *joined = NULL, *result = NULL;

    low = PyTuple_New(n);
    if (low == NULL) goto done;
    Py_ssize_t n_caps = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *l = PyTuple_GET_ITEM(toks[i].info, 0);
        Py_INCREF(l);
        PyTuple_SET_ITEM(low, i, l);
        n_caps += (toks[i].flags & T_CAPITAL) != 0;
    }
    text = PyUnicode_Join(str_space, low);
    terms = PyList_New(0);
    names = PyList_New(0);
    lower = PyList_New(0);
    pairs = PyList_New(0);
    run = PyList_New(0);
    days = PyList_New(0);
    kept = PyList_New(0);
    if (!text || !terms || !names || !lower || !pairs || !run || !days || !kept) goto done;

    Py_ssize_t last = -2; /* index of the name run's last word */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *l = PyTuple_GET_ITEM(toks[i].info, 0), *term = PyTuple_GET_ITEM(toks[i].info, 1);
        int f = toks[i].flags;
        if (f & T_TERM) {
            if (PyList_Append(terms, term) < 0) goto done;
            if ((f & T_CAPITAL) && i > 0 && PyList_Append(names, term) < 0) goto done;
            if ((f & T_LOWER) && PyList_Append(lower, term) < 0) goto done;
        }
        /* name pairs: runs of capitalised words with a term, not in capitals, not a day or month */
        if ((f & T_CAPITAL) && n_caps > 1) {
            PyObject *run_term = !(f & (T_SHOUTING | T_DAY)) && (f & T_SOME_TERM) ? term : NULL;
            if (run_term != NULL && i == last + 1) {
                if (PyList_Append(run, run_term) < 0) goto done;
            } else {
                if (PyList_GET_SIZE(run) > 1 && append_joined(pairs, run) < 0) goto done;
                if (PyList_SetSlice(run, 0, PyList_GET_SIZE(run), NULL) < 0) goto done;
                if (run_term != NULL && PyList_Append(run, run_term) < 0) goto done;
            }
            last = run_term != NULL ? i : -2;
        }
        /* day words: each once */
        if (f & T_DAY) {
            int seen = PySequence_Contains(days, l);
            if (seen < 0 || (!seen && PyList_Append(days, l) < 0)) goto done;
        }
        /* what sentence_key keeps: no numbers ("9" sorts after every digit), no title words */
        if (f & T_AFTER_NINE) {
            int in_title = PySequence_Contains(title_words, l);
            if (in_title < 0 || (!in_title && PyList_Append(kept, l) < 0)) goto done;
        }
    }
    if (PyList_GET_SIZE(run) > 1 && append_joined(pairs, run) < 0) goto done;
    if (PyList_Sort(days) < 0) goto done;
    if (PyList_GET_SIZE(kept) > 1) {
        joined = PyUnicode_Join(str_unit, kept);
        if (joined == NULL) goto done;
    } else {
        joined = Py_None;
        Py_INCREF(joined);
    }
    terms = as_tuple(terms);
    names = as_tuple(names);
    lower = as_tuple(lower);
    pairs = as_tuple(pairs);
    days = as_tuple(days);
    if (!terms || !names || !lower || !pairs || !days) goto done;
    result = PyTuple_Pack(8, low, text, terms, names, lower, pairs, days, joined);
done:
    Py_XDECREF(low);
    Py_XDECREF(text);
    Py_XDECREF(terms);
    Py_XDECREF(names);
    Py_XDECREF(lower);
    Py_XDECREF(pairs);
    Py_XDECREF(run);
    Py_XDECREF(days);
    Py_XDECREF(kept);
    Py_XDECREF(joined);
    return result;
}

static void release_toks(tok_t *toks, Py_ssize_t held) {
    for (Py_ssize_t i = 0; i < held; i++) Py_DECREF(toks[i].info);
    PyMem_Free(toks);
}

/* sentence_parts of a list of tokens as written: one cache look-up each */
static PyObject *parts_of(PyObject *raw, PyObject *cache, PyObject *title_words, PyObject *dom) {
    Py_ssize_t n = PyList_GET_SIZE(raw), held = 0, n_caps = 0;
    tok_t *toks = PyMem_New(tok_t, n ? n : 1);
    if (toks == NULL) return PyErr_NoMemory();
    PyObject *result = NULL, *kept = PyList_GetSlice(raw, 0, n); /* the cache may run code that changes the list */
    if (kept == NULL) goto done;
    for (; held < n; held++) {
        PyObject *tok = PyList_GET_ITEM(kept, held);
        if (!PyUnicode_Check(tok)) {
            PyErr_SetString(PyExc_TypeError, "sentence_parts: tokens must be str");
            goto done;
        }
        PyObject *info = info_of(cache, tok);
        int flags = info == NULL ? -1 : info_flags(info, dom);
        if (flags < 0) {
            Py_XDECREF(info);
            goto done;
        }
        toks[held].info = info;
        toks[held].flags = flags;
        n_caps += (flags & T_CAPITAL) != 0;
    }
    /* a word in capitals ends a name run: asked, as the Python twin asks, where there can be a run */
    for (Py_ssize_t i = 0; n_caps > 1 && i < n; i++) {
        PyObject *tok = PyList_GET_ITEM(kept, i);
        if ((toks[i].flags & T_CAPITAL) && PyUnicode_GET_LENGTH(tok) > 1) {
            PyObject *r = PyObject_CallMethodNoArgs(tok, str_isupper);
            if (r == NULL) goto done;
            if (r == Py_True) toks[i].flags |= T_SHOUTING;
            Py_DECREF(r);
        }
    }
    result = parts_core(n, toks, title_words);
done:
    Py_XDECREF(kept);
    release_toks(toks, held);
    return result;
}

static PyObject *sentence_parts(PyObject *self, PyObject *args) {
    PyObject *raw, *cache, *title_words, *dom;
    if (!PyArg_ParseTuple(args, "O!OOO:sentence_parts", &PyList_Type, &raw, &cache, &title_words, &dom))
        return NULL;
    return parts_of(raw, cache, title_words, dom);
}

/* --- count_and_vectorize -------------------------------------------------------------------------- */

typedef struct {
    double s; /* minus the term's tf-idf */
    PyObject *t; /* borrowed from weights */
} scored_t;

static int by_score_then_term(const void *x, const void *y) {
    const scored_t *a = x, *b = y;
    if (a->s < b->s) return -1;
    if (a->s > b->s) return 1;
    return PyUnicode_Compare(a->t, b->t); /* distinct str keys */
}

PyDoc_STRVAR(count_and_vectorize_doc,
"count_and_vectorize(df, weights, total, k) -> vector\n\nSee monitor.events.similarity.count_and_vectorize_py.");

static PyObject *count_and_vectorize(PyObject *self, PyObject *args) {
    PyObject *df, *weights;
    double total;
    Py_ssize_t k;
    if (!PyArg_ParseTuple(args, "O!O!dn:count_and_vectorize", &PyDict_Type, &df, &PyDict_Type, &weights, &total,
                          &k))
        return NULL;
    Py_ssize_t n = PyDict_GET_SIZE(weights), i = 0, pos = 0;
    scored_t *scored = PyMem_Malloc(sizeof(scored_t) * (n ? n : 1));
    if (scored == NULL) return PyErr_NoMemory();
    PyObject *term, *value, *out = NULL;
    /* count each term once more, as Counter.update does, then read the count back */
    while (PyDict_Next(weights, &pos, &term, &value)) {
        PyObject *old = PyDict_GetItemWithError(df, term);
        if (old == NULL && PyErr_Occurred()) goto done;
        long long d = 0;
        if (old != NULL) {
            d = PyLong_AsLongLong(old);
            if (d == -1 && PyErr_Occurred()) goto done;
        }
        d += 1;
        PyObject *count = PyLong_FromLongLong(d);
        if (count == NULL) goto done;
        int rc = PyDict_SetItem(df, term, count);
        Py_DECREF(count);
        if (rc < 0) goto done;
        double w = PyFloat_AsDouble(value);
        if (w == -1.0 && PyErr_Occurred()) goto done;
        double dd = (double)d;
        scored[i].s = -w * log(1.0 + (total - dd) / (dd + 0.5));
        scored[i].t = term;
        i++;
    }
    if (n > k) {
        qsort(scored, n, sizeof(scored_t), by_score_then_term);
        if (PyErr_Occurred()) goto done;
        n = k;
    }
    double norm2 = 0.0;
    for (i = 0; i < n; i++) norm2 = norm2 + scored[i].s * scored[i].s;
    double norm = sqrt(norm2);
    if (norm == 0.0) norm = 1.0;
    out = PyDict_New();
    if (out == NULL) goto done;
    for (i = 0; i < n; i++) {
        PyObject *v = PyFloat_FromDouble(-scored[i].s / norm);
        if (v == NULL || PyDict_SetItem(out, scored[i].t, v) < 0) {
            Py_XDECREF(v);
            Py_CLEAR(out);
            goto done;
        }
        Py_DECREF(v);
    }
done:
    PyMem_Free(scored);
    return out;
}

/* ASCII characters that end a word in ascii_words: what str.split() splits on, and the
 * punctuation that textfeatures._PUNCTUATION turns into spaces (all but the apostrophe) */
static unsigned char word_ends[128];

static void init_word_ends(void) {
    const char *ends = " \t\n\v\f\r\x1c\x1d\x1e\x1f!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~";
    for (const char *c = ends; *c; c++) word_ends[(unsigned char)*c] = 1;
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_letter(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

/* 1 when `text` is a str, else 0 with a TypeError naming the function */
static int is_str(PyObject *text, const char *function) {
    if (PyUnicode_Check(text)) return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes a str, not %.100s", function, Py_TYPE(text)->tp_name);
    return 0;
}

/* Append s[start:end] (ASCII) to `out` as a str: 0, or -1 with `out` released */
static int append_ascii(PyObject *out, const char *s, Py_ssize_t start, Py_ssize_t end) {
    PyObject *piece = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, s + start, end - start);
    if (piece == NULL || PyList_Append(out, piece) < 0) {
        Py_XDECREF(piece);
        Py_DECREF(out);
        return -1;
    }
    Py_DECREF(piece);
    return 0;
}

PyDoc_STRVAR(ascii_words_doc,
"ascii_words(text) -> list[str] | None\n\nSee monitor.events.textfeatures.ascii_words_py.");

/* The next word of ASCII text without digits, from *i on (as ascii_words_py splits it): 1 with
 * it in [*start, *end), 0 at the end */
static int next_word(const char *s, Py_ssize_t n, Py_ssize_t *i, Py_ssize_t *start, Py_ssize_t *end) {
    Py_ssize_t j = *i;
    while (j < n) {
        while (j < n && word_ends[(unsigned char)s[j]]) j++;
        Py_ssize_t a = j;
        while (j < n && !word_ends[(unsigned char)s[j]]) j++;
        Py_ssize_t b = j;
        while (a < b && s[a] == '\'') a++;
        while (b > a && s[b - 1] == '\'') b--;
        if (a < b) {
            *i = j, *start = a, *end = b;
            return 1;
        }
    }
    *i = j;
    return 0;
}

/* The next of the tokenising expression's matches in ASCII text, from *i on: a number is digits
 * joined by single '.', ',' or ':' (each followed by a digit), a word is letters joined by
 * single apostrophes (each followed by a letter); nothing else is part of a token. 1 with it in
 * [*start, *end), 0 at the end */
static int next_token(const char *s, Py_ssize_t n, Py_ssize_t *i, Py_ssize_t *start, Py_ssize_t *end) {
    Py_ssize_t j = *i;
    while (j < n) {
        Py_ssize_t a = j;
        if (is_digit(s[j])) {
            while (j < n && is_digit(s[j])) j++;
            while (j + 1 < n && (s[j] == '.' || s[j] == ',' || s[j] == ':') && is_digit(s[j + 1])) {
                j++;
                while (j < n && is_digit(s[j])) j++;
            }
        } else if (is_letter(s[j])) {
            while (j < n && is_letter(s[j])) j++;
            while (j + 1 < n && s[j] == '\'' && is_letter(s[j + 1])) {
                j++;
                while (j < n && is_letter(s[j])) j++;
            }
        } else {
            j++;
            continue;
        }
        *i = j, *start = a, *end = j;
        return 1;
    }
    *i = j;
    return 0;
}

typedef int (*next_fn)(const char *, Py_ssize_t, Py_ssize_t *, Py_ssize_t *, Py_ssize_t *);

static int has_digit(const char *s, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (is_digit(s[i])) return 1;
    return 0;
}

/* Each piece `next` finds in s, as a str in a new list */
static PyObject *pieces(const char *s, Py_ssize_t n, next_fn next) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    Py_ssize_t i = 0, start, end;
    while (next(s, n, &i, &start, &end))
        if (append_ascii(out, s, start, end) < 0) return NULL;
    return out;
}

static PyObject *ascii_words(PyObject *self, PyObject *text) {
    if (!is_str(text, "ascii_words")) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (has_digit(s, n)) Py_RETURN_NONE;
    return pieces(s, n, next_word);
}

PyDoc_STRVAR(ascii_tokens_doc,
"ascii_tokens(text) -> list[str] | None\n\nSee monitor.events.textfeatures.ascii_tokens_py.");

static PyObject *ascii_tokens(PyObject *self, PyObject *text) {
    if (!is_str(text, "ascii_tokens")) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    return pieces((const char *)PyUnicode_DATA(text), PyUnicode_GET_LENGTH(text), next_token);
}

PyDoc_STRVAR(sentence_spans_doc,
"sentence_spans(text) -> list[tuple[int, int]] | None\n\nSee monitor.events.textfeatures.sentence_spans_py.");

/* str.isspace() of an ASCII character */
static int is_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f); }

static int is_closer(char c) { return c == '\'' || c == '"' || c == ')' || c == ']'; }

static int append_span(PyObject *out, Py_ssize_t start, Py_ssize_t end) {
    PyObject *span = Py_BuildValue("(nn)", start, end);
    int rc = span == NULL ? -1 : PyList_Append(out, span);
    Py_XDECREF(span);
    return rc;
}

/* The matches of textfeatures._SENTENCE_END in ASCII text, left to right: an end of sentence
 * ('.', '!' or '?'), any closing quotes and brackets, then white space (at least one
 * character); or a line break and the white space after it */
static PyObject *sentence_spans(PyObject *self, PyObject *text) {
    if (!is_str(text, "sentence_spans")) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    while (i < n) {
        Py_ssize_t j;
        if (s[i] == '.' || s[i] == '!' || s[i] == '?') {
            j = i + 1;
            while (j < n && is_closer(s[j])) j++;
            if (j == n || !is_space((unsigned char)s[j])) {
                i++;
                continue;
            }
        } else if (s[i] == '\n') {
            j = i + 1;
        } else {
            i++;
            continue;
        }
        while (j < n && is_space((unsigned char)s[j])) j++;
        if (append_span(out, i, j) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        i = j;
    }
    return out;
}

/* --- the token table: ASCII tokens as written -> their infos and flags -------------------------- */

/* A token cache look-up makes a str of the token, hashes it and probes a dict of up to
 * TERM_CACHE strings: most of the cost of reading a sentence's tokens. So the ASCII tokens of
 * sentences are looked up here first, by their bytes, in a table of slots each holding a token
 * with its info (the cache's own object, held) and flags. A slot is taken over by the next token
 * that hashes to it; a token not found is looked up in the cache, as before. An info is what the
 * cache gives for the token, whenever it is asked (TokenInfo is a function of the token alone:
 * a cache that gave another for the same token would not be read right), so a slot holds it as
 * long as the slots are filled from that cache: another cache, or other day and month words,
 * empty them first, and day words that are not a frozenset (which can change) are not kept. */
#define TOKEN_SLOTS (1 << 16)
#define TOKEN_MAX 24 /* longer tokens (a few in a thousand) are not kept */

typedef struct {
    PyObject *info; /* a strong reference; NULL: an empty slot */
    int flags;
    Py_ssize_t len;
    char key[TOKEN_MAX];
} slot_t;

static slot_t *slots;
static PyObject *slots_cache, *slots_dom; /* strong references: what the slots were filled from */

/* Make the slots those of this cache and these day and month words: 0, or -1 with an error set */
static int bind_slots(PyObject *cache, PyObject *dom) {
    if (slots != NULL && cache == slots_cache && dom == slots_dom) return 0;
    if (slots == NULL) {
        slots = PyMem_RawCalloc(TOKEN_SLOTS, sizeof(slot_t));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    /* unbound while the slots empty (freeing a record may run code that reads or fills them),
     * then bound; the old references go last, for the same reason */
    PyObject *old_cache = slots_cache, *old_dom = slots_dom;
    slots_cache = slots_dom = NULL;
    for (Py_ssize_t i = 0; i < TOKEN_SLOTS; i++) Py_CLEAR(slots[i].info);
    Py_INCREF(cache);
    Py_INCREF(dom);
    slots_cache = cache;
    slots_dom = dom;
    Py_XDECREF(old_cache);
    Py_XDECREF(old_dom);
    return 0;
}

static inline Py_ssize_t slot_of(const char *p, Py_ssize_t n) {
    uint64_t h = 14695981039346656037ULL; /* FNV-1a */
    for (Py_ssize_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return (Py_ssize_t)((h ^ (h >> 32)) & (TOKEN_SLOTS - 1));
}

/* str.isupper() of ASCII text: a capital, and no lower-case letter */
static int ascii_isupper(const char *p, Py_ssize_t n) {
    int upper = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (p[i] >= 'a' && p[i] <= 'z') return 0;
        upper |= p[i] >= 'A' && p[i] <= 'Z';
    }
    return upper;
}

static inline int bound(PyObject *cache, PyObject *dom) {
    return slots != NULL && slots_cache == cache && slots_dom == dom;
}

/* The info (a new reference) and flags of the ASCII token p[:n], from the slots while they are
 * this cache's (another thread may bind them to another while the cache runs Python code), else
 * from the cache: 0, or -1 with an error set */
static int ascii_tok(const char *p, Py_ssize_t n, PyObject *cache, PyObject *dom, tok_t *out) {
    Py_ssize_t at = n <= TOKEN_MAX && bound(cache, dom) ? slot_of(p, n) : -1;
    if (at >= 0) {
        slot_t *slot = &slots[at];
        if (slot->info != NULL && slot->len == n && memcmp(slot->key, p, (size_t)n) == 0) {
            Py_INCREF(slot->info);
            out->info = slot->info;
            out->flags = slot->flags;
            return 0;
        }
    }
    PyObject *tok = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, p, n);
    if (tok == NULL) return -1;
    PyObject *info = info_of(cache, tok);
    Py_DECREF(tok);
    if (info == NULL) return -1;
    int flags = info_flags(info, dom);
    if (flags < 0) {
        Py_DECREF(info);
        return -1;
    }
    if (n > 1 && (flags & T_CAPITAL) && ascii_isupper(p, n)) flags |= T_SHOUTING;
    if (at >= 0 && bound(cache, dom)) {
        slot_t *slot = &slots[at];
        PyObject *old = slot->info;
        Py_INCREF(info);
        slot->info = info;
        slot->flags = flags;
        slot->len = n;
        memcpy(slot->key, p, (size_t)n);
        Py_XDECREF(old);
    }
    out->info = info;
    out->flags = flags;
    return 0;
}

/* sentence_parts of an ASCII sentence, its tokens read here (ascii_words, or ascii_tokens when
 * it has a digit) and looked up in the slots (bound to cache and dom) */
static PyObject *ascii_parts(PyObject *sent, PyObject *cache, PyObject *title_words, PyObject *dom) {
    const char *s = (const char *)PyUnicode_DATA(sent);
    Py_ssize_t n = PyUnicode_GET_LENGTH(sent), i = 0, start, end, held = 0;
    next_fn next = has_digit(s, n) ? next_token : next_word;
    /* the slots hold what cannot change: the day words must be a frozenset (a set may be changed) */
    if (PyFrozenSet_CheckExact(dom) && bind_slots(cache, dom) < 0) return NULL;
    tok_t *toks = PyMem_New(tok_t, n ? n : 1); /* at most one token a character */
    if (toks == NULL) return PyErr_NoMemory();
    PyObject *result = NULL;
    while (next(s, n, &i, &start, &end)) {
        if (ascii_tok(s + start, end - start, cache, dom, &toks[held]) < 0) goto done;
        held++;
    }
    result = parts_core(held, toks, title_words);
done:
    release_toks(toks, held);
    return result;
}

/* --- a sentence's key: BLAKE2b with an 8-byte digest (RFC 7693), as hashlib.blake2b(data,
 * digest_size=8) computes it, read as a little-endian signed integer (reading._key) ---------- */

static const uint64_t blake2b_iv[8] = {
    0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL,
    0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL,
};

static const uint8_t blake2b_sigma[12][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
    {11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4}, {7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8},
    {9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13}, {2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9},
    {12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11}, {13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10},
    {6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5}, {10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0},
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, {14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3},
};

static inline uint64_t rotr64(uint64_t x, int n) { return (x >> n) | (x << (64 - n)); }

#define B2B_G(a, b, c, d, x, y)            \
    do {                                   \
        v[a] = v[a] + v[b] + (x);          \
        v[d] = rotr64(v[d] ^ v[a], 32);    \
        v[c] = v[c] + v[d];                \
        v[b] = rotr64(v[b] ^ v[c], 24);    \
        v[a] = v[a] + v[b] + (y);          \
        v[d] = rotr64(v[d] ^ v[a], 16);    \
        v[c] = v[c] + v[d];                \
        v[b] = rotr64(v[b] ^ v[c], 63);    \
    } while (0)

static void blake2b_compress(uint64_t h[8], const uint8_t block[128], uint64_t counted, int last) {
    uint64_t v[16], m[16];
    for (int i = 0; i < 8; i++) {
        v[i] = h[i];
        v[i + 8] = blake2b_iv[i];
    }
    v[12] ^= counted; /* the counter's high word stays 0: no sentence has 2^64 bytes */
    if (last) v[14] = ~v[14];
    for (int i = 0; i < 16; i++) {
        uint64_t w = 0;
        for (int j = 7; j >= 0; j--) w = (w << 8) | block[8 * i + j];
        m[i] = w;
    }
    for (int r = 0; r < 12; r++) {
        const uint8_t *s = blake2b_sigma[r];
        B2B_G(0, 4, 8, 12, m[s[0]], m[s[1]]);
        B2B_G(1, 5, 9, 13, m[s[2]], m[s[3]]);
        B2B_G(2, 6, 10, 14, m[s[4]], m[s[5]]);
        B2B_G(3, 7, 11, 15, m[s[6]], m[s[7]]);
        B2B_G(0, 5, 10, 15, m[s[8]], m[s[9]]);
        B2B_G(1, 6, 11, 12, m[s[10]], m[s[11]]);
        B2B_G(2, 7, 8, 13, m[s[12]], m[s[13]]);
        B2B_G(3, 4, 9, 14, m[s[14]], m[s[15]]);
    }
    for (int i = 0; i < 8; i++) h[i] ^= v[i] ^ v[i + 8];
}

/* The first 8 bytes of BLAKE2b-64(data) as a little-endian signed integer: that is h[0] */
static int64_t blake2b_64(const uint8_t *data, size_t n) {
    uint64_t h[8];
    uint8_t block[128];
    memcpy(h, blake2b_iv, sizeof h);
    h[0] ^= 0x01010000ULL | 8; /* depth 1, fanout 1, no key, 8-byte digest */
    size_t done = 0;
    while (n - done > 128) {
        memcpy(block, data + done, 128);
        done += 128;
        blake2b_compress(h, block, done, 0);
    }
    memset(block, 0, sizeof block);
    memcpy(block, data + done, n - done);
    blake2b_compress(h, block, n, 1);
    return (int64_t)h[0];
}

PyDoc_STRVAR(sentence_key_of_doc,
"sentence_key_of(kept) -> int | None\n\nSee monitor.events.reading._key (ASCII text only).");

static PyObject *key_of(PyObject *kept) {
    if (kept == Py_None) Py_RETURN_NONE;
    if (!PyUnicode_Check(kept) || !PyUnicode_IS_ASCII(kept)) {
        PyErr_SetString(PyExc_TypeError, "sentence_key_of() takes ASCII text or None");
        return NULL;
    }
    return PyLong_FromLongLong(blake2b_64(PyUnicode_DATA(kept), (size_t)PyUnicode_GET_LENGTH(kept)));
}

static PyObject *sentence_key_of(PyObject *self, PyObject *kept) { return key_of(kept); }

/* --- sentences ------------------------------------------------------------------------------------ */

/* Whether ASCII text has a hyphen before a capital: a compound name needs one (textfeatures.compound_names
 * finds none without it, so compounds(text) is () then, and is not called) */
static int has_hyphen_capital(const char *s, Py_ssize_t n) {
    const char *end = s + n, *p = s;
    while ((p = memchr(p, '-', (size_t)(end - p))) != NULL) {
        if (++p < end && *p >= 'A' && *p <= 'Z') return 1;
    }
    return 0;
}

/* reading._sentence of an ASCII sentence, as an instance of `type` (the Sentence named tuple, whose
 * __new__ is not called: it must only be tuple.__new__ with the fields in order) */
static PyObject *ascii_sentence(PyObject *sent, PyObject *cache, PyObject *title_words, PyObject *dom,
                                PyObject *compounds, PyTypeObject *type) {
    PyObject *parts = ascii_parts(sent, cache, title_words, dom);
    if (parts == NULL) return NULL;
    PyObject *key = NULL, *words = NULL, *comp = NULL, *fields = NULL, *args = NULL, *out = NULL;
    if ((key = key_of(PyTuple_GET_ITEM(parts, 7))) == NULL) goto done;
    if ((words = PyLong_FromSsize_t(PyTuple_GET_SIZE(PyTuple_GET_ITEM(parts, 0)))) == NULL) goto done;
    if (has_hyphen_capital(PyUnicode_DATA(sent), PyUnicode_GET_LENGTH(sent))) {
        comp = PyObject_CallOneArg(compounds, sent);
        if (comp == NULL) goto done;
        if (!PyTuple_Check(comp)) {
            PyErr_SetString(PyExc_TypeError, "sentence_fields: compounds() must return a tuple");
            goto done;
        }
    } else {
        comp = PyTuple_New(0);
        if (comp == NULL) goto done;
    }
    /* (text, key, words, low, terms, day_words, names, compounds, tail, pairs, lower), made an
     * instance of `kind` as tuple.__new__(kind, fields) makes it (what the named tuple's own
     * __new__ calls), so that it is built as the interpreter builds any tuple subclass */
    fields = PyTuple_Pack(11, sent, key, words, PyTuple_GET_ITEM(parts, 1), PyTuple_GET_ITEM(parts, 2),
                          PyTuple_GET_ITEM(parts, 6), PyTuple_GET_ITEM(parts, 3), comp, Py_None,
                          PyTuple_GET_ITEM(parts, 5), PyTuple_GET_ITEM(parts, 4));
    if (fields == NULL || (args = PyTuple_Pack(1, fields)) == NULL) goto done;
    out = PyTuple_Type.tp_new(type, args, NULL);
done:
    Py_DECREF(parts);
    Py_XDECREF(key);
    Py_XDECREF(words);
    Py_XDECREF(comp);
    Py_XDECREF(fields);
    Py_XDECREF(args);
    return out;
}

PyDoc_STRVAR(sentence_fields_doc,
"sentence_fields(sentences, tokens, title_words, day_or_month, compounds, sentence, kind) -> tuple\n\n"
"See monitor.events.reading.sentence_fields_py: each ASCII sentence is read here, any other by\n"
"sentence(text, title_words).");

static PyObject *sentence_fields(PyObject *self, PyObject *args) {
    PyObject *sents, *cache, *title_words, *dom, *compounds, *slow;
    PyTypeObject *type;
    if (!PyArg_ParseTuple(args, "O!OOOOOO!:sentence_fields", &PyList_Type, &sents, &cache, &title_words, &dom,
                          &compounds, &slow, &PyType_Type, &type))
        return NULL;
    if (!PyType_IsSubtype(type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "sentence_fields: type must be a tuple type");
        return NULL;
    }
    /* a tuple of our own: the callbacks (the slow reader, compounds, the token cache) may change the list */
    PyObject *held = PyList_AsTuple(sents);
    if (held == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(held);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        Py_DECREF(held);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *sent = PyTuple_GET_ITEM(held, i), *item;
        if (!is_str(sent, "sentence_fields")) {
            Py_CLEAR(out);
            break;
        }
        if (PyUnicode_IS_ASCII(sent))
            item = ascii_sentence(sent, cache, title_words, dom, compounds, type);
        else
            item = PyObject_CallFunctionObjArgs(slow, sent, title_words, NULL);
        if (item == NULL) {
            Py_CLEAR(out);
            break;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    Py_DECREF(held);
    return out;
}

/* --- what an entry's features keep of its reading ------------------------------------------------- */

/* counts[t] += 1 for each str of `terms` (a tuple or list), new terms in order of first appearance */
static int count_into(PyObject *counts, PyObject *terms) {
    PyObject *seq = PySequence_Fast(terms, "kept_text: terms must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *old = PyDict_GetItemWithError(counts, items[i]);
        if (old == NULL && PyErr_Occurred()) goto fail;
        long c = old == NULL ? 0 : PyLong_AsLong(old);
        if (c == -1 && PyErr_Occurred()) goto fail;
        PyObject *v = PyLong_FromLong(c + 1);
        if (v == NULL) goto fail;
        int rc = PyDict_SetItem(counts, items[i], v);
        Py_DECREF(v);
        if (rc < 0) goto fail;
    }
    Py_DECREF(seq);
    return 0;
fail:
    Py_DECREF(seq);
    return -1;
}

/* list += seq (a tuple or list) */
static int extend(PyObject *list, PyObject *seq) {
    if (!PyTuple_Check(seq) && !PyList_Check(seq)) {
        PyErr_SetString(PyExc_TypeError, "kept_text: a sentence's fields must be tuples or lists");
        return -1;
    }
    Py_ssize_t n = PyList_GET_SIZE(list);
    return PyList_SetSlice(list, n, n, seq);
}

/* set.update(list) */
static int extend_set(PyObject *set, PyObject *list) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++)
        if (PySet_Add(set, PyList_GET_ITEM(list, i)) < 0) return -1;
    return 0;
}

PyDoc_STRVAR(kept_text_doc,
"kept_text(reading, seen, is_boilerplate, feed_id, title_weight, lead_words, max_words, fingerprint_words,\n"
"tail_weight) -> Kept | None\n\nSee monitor.events.similarity.kept_text_py (whose constants are passed here).");

static PyObject *kept_text(PyObject *self, PyObject *args) {
    PyObject *r, *seen, *is_bp, *feed_id;
    Py_ssize_t title_weight, lead_words, max_words, fp_words;
    double tail_weight;
    if (!PyArg_ParseTuple(args, "O!OOOnnnnd:kept_text", &PyTuple_Type, &r, &seen, &is_bp, &feed_id, &title_weight,
                          &lead_words, &max_words, &fp_words, &tail_weight))
        return NULL;
    if (PyTuple_GET_SIZE(r) != 9 || !PyTuple_Check(PyTuple_GET_ITEM(r, 7))) {
        PyErr_SetString(PyExc_TypeError, "kept_text: not a reading");
        return NULL;
    }
    PyObject *title = PyTuple_GET_ITEM(r, 0), *title_terms = PyTuple_GET_ITEM(r, 2),
             *headline = PyTuple_GET_ITEM(r, 6), *sentences = PyTuple_GET_ITEM(r, 7);
    int complete = PyObject_IsTrue(PyTuple_GET_ITEM(r, 8));
    if (complete < 0) return NULL;
    PyObject *keys = NULL, *lead_text = NULL, *lead = NULL, *tail = NULL, *day_words = NULL, *body = NULL,
             *names = NULL, *compounds = NULL, *pairs = NULL, *capitalised = NULL, *lower = NULL, *weights = NULL,
             *name_terms = NULL, *result = NULL;
    /* each made only if the one before was (no call with an error set) */
    if (!(keys = PyList_New(0)) || !(lead_text = PyList_New(0)) || !(lead = PyDict_New()) || !(tail = PyDict_New())
        || !(day_words = PySequence_List(PyTuple_GET_ITEM(r, 3))) || !(body = PyList_New(0))
        || !(names = PySequence_List(PyTuple_GET_ITEM(r, 4))) || !(compounds = PyList_New(0))
        || !(pairs = PySequence_List(PyTuple_GET_ITEM(r, 5))) || !(capitalised = PySequence_List(PyTuple_GET_ITEM(r, 4)))
        || !(lower = PyList_New(0)))
        goto done;
    if (PyList_Append(lead_text, title) < 0) goto done;
    for (Py_ssize_t i = 0; i < title_weight; i++)
        if (count_into(lead, title_terms) < 0) goto done;
    Py_ssize_t words = 0, body_words = 0, n_sent = PyTuple_GET_SIZE(sentences);
    for (Py_ssize_t i = 0; i < n_sent && words < max_words; i++) {
        PyObject *sent = PyTuple_GET_ITEM(sentences, i);
        if (!PyTuple_Check(sent) || PyTuple_GET_SIZE(sent) != 11) {
            PyErr_SetString(PyExc_TypeError, "kept_text: a sentence must have 11 fields");
            goto done;
        }
        int in_lead = words < lead_words;
        PyObject *key = PyTuple_GET_ITEM(sent, 1), *nobj = PyTuple_GET_ITEM(sent, 2),
                 *low = PyTuple_GET_ITEM(sent, 3), *terms = PyTuple_GET_ITEM(sent, 4),
                 *tail_form = PyTuple_GET_ITEM(sent, 8);
        if (tail_form != Py_None && !in_lead) {
            if (!PyTuple_Check(tail_form) || PyTuple_GET_SIZE(tail_form) != 4) {
                PyErr_SetString(PyExc_TypeError, "kept_text: a tail form must have 4 fields");
                goto done;
            }
            key = PyTuple_GET_ITEM(tail_form, 0);
            nobj = PyTuple_GET_ITEM(tail_form, 1);
            low = PyTuple_GET_ITEM(tail_form, 2);
            terms = PyTuple_GET_ITEM(tail_form, 3);
        }
        Py_ssize_t n = PyLong_AsSsize_t(nobj);
        if (n == -1 && PyErr_Occurred()) goto done;
        if (!n) continue;
        if (key != Py_None) {
            if (PyList_Append(keys, key) < 0) goto done;
            int in_seen = PySequence_Contains(seen, key);
            if (in_seen < 0) goto done;
            if (in_seen) {
                PyObject *verdict = PyObject_CallFunctionObjArgs(is_bp, feed_id, key, headline, NULL);
                if (verdict == NULL) goto done;
                int boiler = PyObject_IsTrue(verdict);
                Py_DECREF(verdict);
                if (boiler < 0) goto done;
                if (boiler) continue;
            }
        }
        if (extend(pairs, PyTuple_GET_ITEM(sent, 9)) < 0 || extend(capitalised, PyTuple_GET_ITEM(sent, 6)) < 0
            || extend(lower, PyTuple_GET_ITEM(sent, 10)) < 0)
            goto done;
        if (in_lead) {
            if (PyList_Append(lead_text, PyTuple_GET_ITEM(sent, 0)) < 0 || count_into(lead, terms) < 0
                || extend(day_words, PyTuple_GET_ITEM(sent, 5)) < 0 || extend(names, PyTuple_GET_ITEM(sent, 6)) < 0
                || extend(compounds, PyTuple_GET_ITEM(sent, 7)) < 0)
                goto done;
        } else if (count_into(tail, terms) < 0) {
            goto done;
        }
        if (body_words < fp_words) {
            if (PyList_Append(body, low) < 0) goto done;
            body_words += n;
        }
        words += n;
    }
    if (words < max_words && !complete) {
        result = Py_None;
        Py_INCREF(result);
        goto done;
    }
    if (count_into(lead, compounds) < 0) goto done;
    name_terms = PySet_New(names);
    if (name_terms == NULL || extend_set(name_terms, compounds) < 0) goto done;
    /* sublinear within each part: 1 + ln(count), the tail's times tail_weight added on */
    weights = PyDict_New();
    if (weights == NULL) goto done;
    PyObject *t, *c;
    Py_ssize_t pos = 0;
    while (PyDict_Next(lead, &pos, &t, &c)) {
        PyObject *w = PyFloat_FromDouble(1.0 + log((double)PyLong_AsLong(c)));
        if (w == NULL || PyDict_SetItem(weights, t, w) < 0) {
            Py_XDECREF(w);
            goto done;
        }
        Py_DECREF(w);
    }
    pos = 0;
    while (PyDict_Next(tail, &pos, &t, &c)) {
        PyObject *old = PyDict_GetItemWithError(weights, t);
        if (old == NULL && PyErr_Occurred()) goto done;
        double before = old == NULL ? 0.0 : PyFloat_AS_DOUBLE(old);
        PyObject *w = PyFloat_FromDouble(before + tail_weight * (1.0 + log((double)PyLong_AsLong(c))));
        if (w == NULL || PyDict_SetItem(weights, t, w) < 0) {
            Py_XDECREF(w);
            goto done;
        }
        Py_DECREF(w);
    }
    result = Py_BuildValue("(OOOOOOnOnOOO)", keys, lead_text, weights, lead, name_terms, day_words, words, body,
                           body_words, pairs, capitalised, lower);
done:
    Py_XDECREF(keys);
    Py_XDECREF(lead_text);
    Py_XDECREF(lead);
    Py_XDECREF(tail);
    Py_XDECREF(day_words);
    Py_XDECREF(body);
    Py_XDECREF(names);
    Py_XDECREF(compounds);
    Py_XDECREF(pairs);
    Py_XDECREF(capitalised);
    Py_XDECREF(lower);
    Py_XDECREF(weights);
    Py_XDECREF(name_terms);
    return result;
}

static PyMethodDef methods[] = {
    {"kept_text", kept_text, METH_VARARGS, kept_text_doc},
    {"ascii_words", ascii_words, METH_O, ascii_words_doc},
    {"ascii_tokens", ascii_tokens, METH_O, ascii_tokens_doc},
    {"sentence_spans", sentence_spans, METH_O, sentence_spans_doc},
    {"sentence_parts", sentence_parts, METH_VARARGS, sentence_parts_doc},
    {"sentence_key_of", sentence_key_of, METH_O, sentence_key_of_doc},
    {"sentence_fields", sentence_fields, METH_VARARGS, sentence_fields_doc},
    {"count_and_vectorize", count_and_vectorize, METH_VARARGS, count_and_vectorize_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_reading", "Compiled twins of textfeatures.ascii_words_py, ascii_tokens_py and sentence_spans_py,"
    " reading.sentence_parts_py and sentence_fields_py, similarity.kept_text_py and count_and_vectorize_py.",
    -1,
    methods,
};

PyMODINIT_FUNC PyInit__reading(void) {
    str_isupper = PyUnicode_InternFromString("isupper");
    str_space = PyUnicode_InternFromString(" ");
    str_unit = PyUnicode_InternFromString("\x1f");
    str_nine = PyUnicode_InternFromString("9");
    if (!str_isupper || !str_space || !str_unit || !str_nine) return NULL;
    init_word_ends();
    return PyModule_Create(&module);
}

/* Reading and weighing an entry, the parts compiled: the words of a plain ASCII sentence
 * (monitor/events/textfeatures.py has the same in Python: ascii_words_py), the tokens of an
 * ASCII sentence with digits (ascii_tokens_py), a sentence's tokens
 * (monitor/events/reading.py: sentence_parts_py, with name_pairs) and an entry's tf-idf vector
 * (monitor/events/similarity.py: count_and_vectorize_py).
 *
 * Each returns exactly what its Python twin returns: the same strings (the token cache's own
 * objects, or joined from them) and the same doubles (the same operations in the same order,
 * libm's log and sqrt as Python's math calls them; the build turns off fused multiply-add), in
 * the same order. The Python twins spend most of their time in the calls between builtins.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdlib.h>

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

static PyObject *sentence_parts(PyObject *self, PyObject *args) {
    PyObject *raw, *cache, *title_words, *dom;
    if (!PyArg_ParseTuple(args, "O!OOO:sentence_parts", &PyList_Type, &raw, &cache, &title_words, &dom))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(raw);
    PyObject **infos = PyMem_Calloc(n ? n : 1, sizeof(PyObject *));
    if (infos == NULL) return PyErr_NoMemory();
    PyObject *low = NULL, *text = NULL, *terms = NULL, *names = NULL, *lower = NULL, *pairs = NULL,
             *run = NULL, *days = NULL, *kept = NULL, *joined = NULL, *result = NULL;
    Py_ssize_t held = 0;

    /* one look-up per token; the cache may be emptied by a miss, so each info is held here */
    low = PyTuple_New(n);
    if (low == NULL) goto done;
    for (; held < n; held++) {
        PyObject *tok = PyList_GET_ITEM(raw, held);
        if (!PyUnicode_Check(tok)) {
            PyErr_SetString(PyExc_TypeError, "sentence_parts: tokens must be str");
            goto done;
        }
        PyObject *info = PyObject_GetItem(cache, tok);
        if (info == NULL) goto done;
        infos[held] = info;
        if (!PyTuple_Check(info) || PyTuple_GET_SIZE(info) < 4
            || !PyUnicode_Check(PyTuple_GET_ITEM(info, 0))) {
            PyErr_SetString(PyExc_TypeError, "sentence_parts: the cache must give (low, term, capital, lower)");
            held++;
            goto done;
        }
        PyObject *l = PyTuple_GET_ITEM(info, 0);
        Py_INCREF(l);
        PyTuple_SET_ITEM(low, held, l);
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

    Py_ssize_t n_caps = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int c = truthy(PyTuple_GET_ITEM(infos[i], 2));
        if (c < 0) goto done;
        n_caps += c;
    }
    Py_ssize_t last = -2; /* index of the name run's last word */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *info = infos[i];
        PyObject *l = PyTuple_GET_ITEM(info, 0), *term = PyTuple_GET_ITEM(info, 1);
        int has_term = truthy(term), capital = truthy(PyTuple_GET_ITEM(info, 2)),
            lower_case = truthy(PyTuple_GET_ITEM(info, 3));
        int day_or_month = PySet_Contains(dom, l);
        if (has_term < 0 || capital < 0 || lower_case < 0 || day_or_month < 0) goto done;
        if (has_term && PyList_Append(terms, term) < 0) goto done;
        if (has_term && capital && i > 0 && PyList_Append(names, term) < 0) goto done;
        if (has_term && lower_case && PyList_Append(lower, term) < 0) goto done;
        /* name pairs: runs of capitalised words with a term, not in capitals, not a day or month */
        if (capital && n_caps > 1) {
            PyObject *tok = PyList_GET_ITEM(raw, i);
            PyObject *run_term = NULL;
            int shouting = 0;
            if (PyUnicode_GET_LENGTH(tok) > 1) {
                PyObject *r = PyObject_CallMethodNoArgs(tok, str_isupper);
                if (r == NULL) goto done;
                shouting = r == Py_True;
                Py_DECREF(r);
            }
            if (!shouting && !day_or_month && term != Py_None) run_term = term;
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
        if (day_or_month) {
            int seen = PySequence_Contains(days, l);
            if (seen < 0 || (!seen && PyList_Append(days, l) < 0)) goto done;
        }
        /* what sentence_key keeps: no numbers ("9" sorts after every digit), no title words */
        int after_nine = PyUnicode_Compare(l, str_nine) > 0;
        if (PyErr_Occurred()) goto done;
        if (after_nine) {
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
    for (Py_ssize_t i = 0; i < held; i++) Py_XDECREF(infos[i]);
    PyMem_Free(infos);
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

static PyObject *ascii_words(PyObject *self, PyObject *text) {
    if (!is_str(text, "ascii_words")) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i;
    for (i = 0; i < n; i++)
        if (is_digit(s[i])) Py_RETURN_NONE;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    i = 0;
    while (i < n) {
        while (i < n && word_ends[(unsigned char)s[i]]) i++;
        Py_ssize_t start = i;
        while (i < n && !word_ends[(unsigned char)s[i]]) i++;
        Py_ssize_t end = i;
        while (start < end && s[start] == '\'') start++;
        while (end > start && s[end - 1] == '\'') end--;
        if (start == end) continue;
        if (append_ascii(out, s, start, end) < 0) return NULL;
    }
    return out;
}

PyDoc_STRVAR(ascii_tokens_doc,
"ascii_tokens(text) -> list[str] | None\n\nSee monitor.events.textfeatures.ascii_tokens_py.");


/* The tokenising expression's matches in ASCII text, left to right: a number is digits
 * joined by single '.', ',' or ':' (each followed by a digit), a word is letters joined by
 * single apostrophes (each followed by a letter); nothing else is part of a token. */
static PyObject *ascii_tokens(PyObject *self, PyObject *text) {
    if (!is_str(text, "ascii_tokens")) return NULL;
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), i = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    while (i < n) {
        Py_ssize_t start = i;
        if (is_digit(s[i])) {
            while (i < n && is_digit(s[i])) i++;
            while (i + 1 < n && (s[i] == '.' || s[i] == ',' || s[i] == ':') && is_digit(s[i + 1])) {
                i++;
                while (i < n && is_digit(s[i])) i++;
            }
        } else if (is_letter(s[i])) {
            while (i < n && is_letter(s[i])) i++;
            while (i + 1 < n && s[i] == '\'' && is_letter(s[i + 1])) {
                i++;
                while (i < n && is_letter(s[i])) i++;
            }
        } else {
            i++;
            continue;
        }
        if (append_ascii(out, s, start, i) < 0) return NULL;
    }
    return out;
}

static PyMethodDef methods[] = {
    {"ascii_words", ascii_words, METH_O, ascii_words_doc},
    {"ascii_tokens", ascii_tokens, METH_O, ascii_tokens_doc},
    {"sentence_parts", sentence_parts, METH_VARARGS, sentence_parts_doc},
    {"count_and_vectorize", count_and_vectorize, METH_VARARGS, count_and_vectorize_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_reading", "Compiled twins of textfeatures.ascii_words_py and ascii_tokens_py, reading.sentence_parts_py,"
    " similarity.count_and_vectorize_py.",
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

/* The per-token part of reading a sentence, compiled (monitor/events/reading.py has the same in
 * Python: sentence_parts_py, and name_pairs).
 *
 * It returns exactly what its Python twin returns: the same strings (the token cache's own
 * objects, or joined from them), in the same order. A sentence has a dozen or two tokens; the
 * Python twin spends most of its time in the calls between them, this does them in one pass.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

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
        if (has_term < 0 || capital < 0 || lower_case < 0) goto done;
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
            if (!shouting) {
                int dm = PySet_Contains(dom, l);
                if (dm < 0) goto done;
                if (!dm && term != Py_None) run_term = term;
            }
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
        int dm = PySet_Contains(dom, l);
        if (dm < 0) goto done;
        if (dm) {
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

static PyMethodDef methods[] = {
    {"sentence_parts", sentence_parts, METH_VARARGS, sentence_parts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_reading", "Compiled twin of monitor.events.reading.sentence_parts_py.", -1,
    methods,
};

PyMODINIT_FUNC PyInit__reading(void) {
    str_isupper = PyUnicode_InternFromString("isupper");
    str_space = PyUnicode_InternFromString(" ");
    str_unit = PyUnicode_InternFromString("\x1f");
    str_nine = PyUnicode_InternFromString("9");
    if (!str_isupper || !str_space || !str_unit || !str_nine) return NULL;
    return PyModule_Create(&module);
}

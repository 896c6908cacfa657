/* Compiled loops of the candidate search (monitor.events.scan has the same functions in Python).
 *
 * Every function here computes exactly what its Python twin computes, operation for operation:
 * the same products and sums of doubles in the same order (the build turns off fused
 * multiply-add, which would round differently), the same comparisons, libm's exp and sqrt as
 * Python's math module calls them. So a decision never depends on whether this module was
 * built; tests/events/test_scan.py compares the two on random and generated input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* --- a small open-addressing table: entry id -> running sum -------------------------------- */

typedef struct {
    long long key;
    PyObject *eid;    /* borrowed from a postings dict, alive for the call */
    double sum;
    Py_ssize_t order; /* place in the order of first additions, -1 before the first */
    int used;
} slot_t;

typedef struct {
    slot_t *slots;
    size_t mask;
} table_t;

static int table_init(table_t *t, Py_ssize_t expected) {
    size_t cap = 16;
    while (cap < (size_t)expected * 2 + 1) cap <<= 1;
    t->slots = PyMem_Calloc(cap, sizeof(slot_t));
    if (t->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    t->mask = cap - 1;
    return 0;
}

static inline size_t mix(long long key) {
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

/* The slot of `key`: its own, or the empty one where it would go. */
static inline slot_t *table_find(table_t *t, long long key) {
    size_t i = mix(key) & t->mask;
    for (;;) {
        slot_t *s = &t->slots[i];
        if (!s->used || s->key == key) return s;
        i = (i + 1) & t->mask;
    }
}

static int as_key(PyObject *eid, long long *key) {
    *key = PyLong_AsLongLong(eid);
    if (*key == -1 && PyErr_Occurred()) return -1;
    return 0;
}

/* --- scan ------------------------------------------------------------------------------------ */

PyDoc_STRVAR(scan_doc,
"scan(terms, floor, bound, stamps, ts, window, half_inv_scale2, join, confident, syndicated,\n"
"     names, specific) -> list of (upper, eid, decay, partial)\n\n"
"See monitor.events.scan.scan_py.");

static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *terms, *stamps, *names, *specific;
    double floor_, bound, ts, window, h, join, confident, syndicated;
    if (!PyArg_ParseTuple(args, "O!ddO!ddddddOO!:scan", &PyList_Type, &terms, &floor_, &bound,
                          &PyDict_Type, &stamps, &ts, &window, &h, &join, &confident, &syndicated,
                          &names, &PyDict_Type, &specific))
        return NULL;

    Py_ssize_t n_terms = PyList_GET_SIZE(terms);
    Py_ssize_t opened_total = 0;
    for (Py_ssize_t i = 0; i < n_terms; i++) {
        PyObject *item = PyList_GET_ITEM(terms, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 3 || !PyFloat_Check(PyTuple_GET_ITEM(item, 0))
            || !PyDict_Check(PyTuple_GET_ITEM(item, 1)) || !PyBool_Check(PyTuple_GET_ITEM(item, 2))) {
            PyErr_SetString(PyExc_TypeError, "scan: terms must be (float, dict, bool) tuples");
            return NULL;
        }
        if (PyTuple_GET_ITEM(item, 2) == Py_False)
            opened_total += PyDict_GET_SIZE(PyTuple_GET_ITEM(item, 1));
    }

    table_t t;
    if (table_init(&t, opened_total) < 0) return NULL;
    Py_ssize_t *order = PyMem_Malloc(sizeof(Py_ssize_t) * (opened_total + 1));
    PyObject *out = NULL;
    if (order == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* The entries that terms which are not minor open (a minor term adds only to those). */
    for (Py_ssize_t i = 0; i < n_terms; i++) {
        PyObject *item = PyList_GET_ITEM(terms, i);
        if (PyTuple_GET_ITEM(item, 2) == Py_True) continue;
        PyObject *p = PyTuple_GET_ITEM(item, 1), *eid, *dw;
        Py_ssize_t pos = 0;
        while (PyDict_Next(p, &pos, &eid, &dw)) {
            long long key;
            if (as_key(eid, &key) < 0) goto done;
            slot_t *s = table_find(&t, key);
            if (!s->used) {
                s->used = 1;
                s->key = key;
                s->eid = eid;
                s->order = -1;
            }
        }
    }
    /* The sums, term by term in the vector's order, each entry's first addition giving its place. */
    Py_ssize_t n_open = 0;
    for (Py_ssize_t i = 0; i < n_terms; i++) {
        PyObject *item = PyList_GET_ITEM(terms, i);
        double w = PyFloat_AS_DOUBLE(PyTuple_GET_ITEM(item, 0));
        PyObject *p = PyTuple_GET_ITEM(item, 1), *eid, *dw;
        Py_ssize_t pos = 0;
        while (PyDict_Next(p, &pos, &eid, &dw)) {
            long long key;
            if (as_key(eid, &key) < 0) goto done;
            slot_t *s = table_find(&t, key);
            if (!s->used) continue; /* a minor term's entry that nothing else opened */
            if (!PyFloat_Check(dw)) {
                PyErr_SetString(PyExc_TypeError, "scan: posting weights must be floats");
                goto done;
            }
            double x = w * PyFloat_AS_DOUBLE(dw);
            if (s->order < 0) {
                s->order = n_open;
                order[n_open++] = s - t.slots;
                s->sum = 0.0 + x;
            } else {
                s->sum = s->sum + x;
            }
        }
    }

    out = PyList_New(0);
    if (out == NULL) goto done;
    for (Py_ssize_t k = 0; k < n_open; k++) {
        slot_t *s = &t.slots[order[k]];
        double partial = s->sum;
        if (partial < floor_) continue;
        double upper = partial + bound;
        PyObject *stamp = PyDict_GetItemWithError(stamps, s->eid);
        if (stamp == NULL) {
            if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, s->eid);
            goto fail;
        }
        double st = PyFloat_AsDouble(stamp);
        if (st == -1.0 && PyErr_Occurred()) goto fail;
        double gap = fabs(ts - st);
        if (gap > window) continue;
        double decay = exp(-gap * gap * h);
        int keep;
        if (upper >= syndicated) {
            keep = 1;
        } else {
            double reach = upper * decay;
            keep = 0;
            if (reach >= join) {
                if (reach >= confident) {
                    keep = 1;
                } else {
                    PyObject *theirs = PyDict_GetItemWithError(specific, s->eid);
                    if (theirs == NULL) {
                        if (!PyErr_Occurred()) PyErr_SetObject(PyExc_KeyError, s->eid);
                        goto fail;
                    }
                    PyObject *disjoint = PyObject_CallMethod(names, "isdisjoint", "O", theirs);
                    if (disjoint == NULL) goto fail;
                    keep = !PyObject_IsTrue(disjoint);
                    Py_DECREF(disjoint);
                }
            }
        }
        if (!keep) continue;
        PyObject *row = Py_BuildValue("(dOdd)", upper, s->eid, decay, partial);
        if (row == NULL || PyList_Append(out, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    goto done;
fail:
    Py_CLEAR(out);
done:
    PyMem_Free(order);
    PyMem_Free(t.slots);
    return out;
}

/* --- dot products over term -> weight dicts --------------------------------------------------- */

PyDoc_STRVAR(lead_cosine_doc, "lead_cosine(a, a_lead, b) -> float\n\nSee monitor.events.scan.lead_cosine_py.");

static PyObject *lead_cosine(PyObject *self, PyObject *args) {
    PyObject *a, *lead, *b;
    if (!PyArg_ParseTuple(args, "O!OO!:lead_cosine", &PyDict_Type, &a, &lead, &PyDict_Type, &b)) return NULL;
    double num = 0.0, n2 = 0.0;
    PyObject *term, *wa;
    Py_ssize_t pos = 0;
    while (PyDict_Next(a, &pos, &term, &wa)) {
        int in_lead = PyAnySet_Check(lead) ? PySet_Contains(lead, term) : PySequence_Contains(lead, term);
        if (in_lead < 0) return NULL;
        if (!in_lead) continue;
        double w = PyFloat_AsDouble(wa);
        if (w == -1.0 && PyErr_Occurred()) return NULL;
        n2 = n2 + w * w;
        PyObject *wb = PyDict_GetItemWithError(b, term);
        double y = 0.0;
        if (wb == NULL) {
            if (PyErr_Occurred()) return NULL;
        } else {
            y = PyFloat_AsDouble(wb);
            if (y == -1.0 && PyErr_Occurred()) return NULL;
        }
        num = num + w * y;
    }
    return PyFloat_FromDouble(n2 ? num / sqrt(n2) : 0.0);
}

PyDoc_STRVAR(dot_doc, "dot(pairs, b) -> float\n\nSee monitor.events.scan.dot_py.");

static PyObject *dot(PyObject *self, PyObject *args) {
    PyObject *pairs, *b;
    if (!PyArg_ParseTuple(args, "O!O!:dot", &PyList_Type, &pairs, &PyDict_Type, &b)) return NULL;
    double s = 0.0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(pairs); i++) {
        PyObject *item = PyList_GET_ITEM(pairs, i);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
            PyErr_SetString(PyExc_TypeError, "dot: pairs must be (term, weight) tuples");
            return NULL;
        }
        double w = PyFloat_AsDouble(PyTuple_GET_ITEM(item, 1));
        if (w == -1.0 && PyErr_Occurred()) return NULL;
        PyObject *wb = PyDict_GetItemWithError(b, PyTuple_GET_ITEM(item, 0));
        double y = 0.0;
        if (wb == NULL) {
            if (PyErr_Occurred()) return NULL;
        } else {
            y = PyFloat_AsDouble(wb);
            if (y == -1.0 && PyErr_Occurred()) return NULL;
        }
        s = s + w * y;
    }
    return PyFloat_FromDouble(s);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"lead_cosine", lead_cosine, METH_VARARGS, lead_cosine_doc},
    {"dot", dot, METH_VARARGS, dot_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Compiled loops of monitor.events.scan.", -1, methods,
};

PyMODINIT_FUNC PyInit__scan(void) { return PyModule_Create(&module); }

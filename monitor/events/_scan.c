/* The window's inverted index and the candidate search's inner loops, compiled
 * (monitor/events/scan.py has the same in Python: WindowIndexPy, lead_cosine_py, dot_py).
 *
 * Every function here computes exactly what its Python twin computes, operation for operation:
 * the same products and sums of doubles in the same order (the build turns off fused
 * multiply-add, which would round differently), the same comparisons, libm's exp and sqrt as
 * Python's math module calls them, and the same order of entries in what it returns. So a
 * decision never depends on whether this module was built; tests/events/test_scan.py compares
 * the two on random and generated input.
 *
 * A term's postings are three flat arrays (entry ids, the term's weights, the entries' published
 * times) in the order the entries were added, so the search reads them in sequence instead of
 * reaching number objects all over memory. Entries leave the window oldest first, so removal
 * finds them at the front, where it only moves the postings' start.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>

/* --- one term's postings ---------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    Py_ssize_t n, cap;
    long long *ids;
    double *ws; /* the term's weight in each entry's vector */
    double *ts; /* each entry's published time */
    double maxw; /* the highest weight in ws */
    /* The arrays above start `start` places into these allocations of `cap` places: the oldest
     * entry leaves by moving the start, not the rest of the postings. */
    Py_ssize_t start;
    long long *ids0;
    double *ws0, *ts0;
} PostingsObject;

static void postings_dealloc(PostingsObject *self) {
    PyMem_Free(self->ids0);
    PyMem_Free(self->ws0);
    PyMem_Free(self->ts0);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject PostingsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.events._scan.Postings",
    .tp_basicsize = sizeof(PostingsObject),
    .tp_dealloc = (destructor)postings_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One term's postings in a WindowIndex (internal).",
};

/* Move the postings to the start of their allocations. */
static void postings_compact(PostingsObject *p) {
    if (p->start == 0) return;
    memmove(p->ids0, p->ids, sizeof(long long) * p->n);
    memmove(p->ws0, p->ws, sizeof(double) * p->n);
    memmove(p->ts0, p->ts, sizeof(double) * p->n);
    p->ids = p->ids0;
    p->ws = p->ws0;
    p->ts = p->ts0;
    p->start = 0;
}

/* Room for `cap` postings (cap >= n), compacted first. */
static int postings_reserve(PostingsObject *p, Py_ssize_t cap) {
    postings_compact(p);
    long long *ids = PyMem_Realloc(p->ids0, sizeof(long long) * cap);
    if (ids == NULL) goto nomem;
    p->ids = p->ids0 = ids;
    double *ws = PyMem_Realloc(p->ws0, sizeof(double) * cap);
    if (ws == NULL) goto nomem;
    p->ws = p->ws0 = ws;
    double *ts = PyMem_Realloc(p->ts0, sizeof(double) * cap);
    if (ts == NULL) goto nomem;
    p->ts = p->ts0 = ts;
    p->cap = cap;
    return 0;
nomem:
    PyErr_NoMemory();
    return -1;
}

static PostingsObject *postings_new(void) {
    PostingsObject *p = PyObject_New(PostingsObject, &PostingsType);
    if (p == NULL) return NULL;
    p->n = p->cap = p->start = 0;
    p->ids = p->ids0 = NULL;
    p->ws = p->ts = p->ws0 = p->ts0 = NULL;
    p->maxw = 0.0;
    if (postings_reserve(p, 4) < 0) {
        Py_DECREF(p);
        return NULL;
    }
    return p;
}

/* --- the index ---------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *terms; /* dict: term -> PostingsObject */
    Py_ssize_t entries;
} IndexObject;

static int index_traverse(IndexObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->terms);
    return 0;
}

static int index_clear(IndexObject *self) {
    Py_CLEAR(self->terms);
    return 0;
}

static void index_dealloc(IndexObject *self) {
    PyObject_GC_UnTrack(self);
    index_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *index_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    if (PyTuple_GET_SIZE(args) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "WindowIndex() takes no arguments");
        return NULL;
    }
    IndexObject *self = (IndexObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->terms = PyDict_New();
    if (self->terms == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->entries = 0;
    return (PyObject *)self;
}

static Py_ssize_t index_len(IndexObject *self) { return self->entries; }

static int as_weight(PyObject *value, double *w) {
    *w = PyFloat_AsDouble(value);
    return (*w == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

/* The next (term, weight) of an entry's vector, with the term's postings (NULL when the index has
 * none): 1, or 0 at the end, or -1 with an exception set. */
static int next_term(IndexObject *self, PyObject *vec, Py_ssize_t *pos, PyObject **term, PyObject **value,
                     double *w, PostingsObject **p) {
    if (!PyDict_Next(vec, pos, term, value)) return 0;
    if (as_weight(*value, w) < 0) return -1;
    *p = (PostingsObject *)PyDict_GetItemWithError(self->terms, *term);
    return (*p == NULL && PyErr_Occurred()) ? -1 : 1;
}

static PyObject *index_add(IndexObject *self, PyObject *args) {
    long long eid;
    double ts;
    PyObject *vec;
    if (!PyArg_ParseTuple(args, "LdO!:add", &eid, &ts, &PyDict_Type, &vec)) return NULL;
    PyObject *term, *value;
    PostingsObject *p;
    double w;
    Py_ssize_t pos = 0;
    int more;
    while ((more = next_term(self, vec, &pos, &term, &value, &w, &p)) > 0) {
        if (p == NULL) {
            p = postings_new();
            if (p == NULL) return NULL;
            int rc = PyDict_SetItem(self->terms, term, (PyObject *)p);
            Py_DECREF(p); /* the dict holds it */
            if (rc < 0) return NULL;
            p->maxw = w;
        } else if (w > p->maxw) {
            p->maxw = w;
        }
        if (p->start + p->n == p->cap) {
            if (p->start >= p->n) /* at least half the room is before the start: use it */
                postings_compact(p);
            else if (postings_reserve(p, p->cap * 2) < 0)
                return NULL;
        }
        p->ids[p->n] = eid;
        p->ws[p->n] = w;
        p->ts[p->n] = ts;
        p->n++;
    }
    if (more < 0) return NULL;
    self->entries++;
    Py_RETURN_NONE;
}

static PyObject *index_remove(IndexObject *self, PyObject *args) {
    long long eid;
    PyObject *vec;
    if (!PyArg_ParseTuple(args, "LO!:remove", &eid, &PyDict_Type, &vec)) return NULL;
    PyObject *term, *value;
    PostingsObject *p;
    double w;
    Py_ssize_t pos = 0;
    int more;
    while ((more = next_term(self, vec, &pos, &term, &value, &w, &p)) > 0) {
        if (p == NULL) {
            PyErr_SetObject(PyExc_KeyError, term);
            return NULL;
        }
        Py_ssize_t i = 0;
        while (i < p->n && p->ids[i] != eid) i++;
        if (i == p->n) {
            PyObject *key = PyLong_FromLongLong(eid);
            if (key != NULL) {
                PyErr_SetObject(PyExc_KeyError, key);
                Py_DECREF(key);
            }
            return NULL;
        }
        if (p->n == 1) {
            if (PyDict_DelItem(self->terms, term) < 0) return NULL;
            continue;
        }
        if (i == 0) { /* the oldest, as the window moves */
            p->ids++;
            p->ws++;
            p->ts++;
            p->start++;
        } else {
            Py_ssize_t tail = p->n - i - 1;
            memmove(p->ids + i, p->ids + i + 1, sizeof(long long) * tail);
            memmove(p->ws + i, p->ws + i + 1, sizeof(double) * tail);
            memmove(p->ts + i, p->ts + i + 1, sizeof(double) * tail);
        }
        p->n--;
        if (w == p->maxw) { /* the highest weight left: a stale bound would open candidates for nothing */
            double m = p->ws[0];
            for (Py_ssize_t j = 1; j < p->n; j++)
                if (p->ws[j] > m) m = p->ws[j];
            p->maxw = m;
        }
        if (p->cap > 16 && p->n * 4 < p->cap && postings_reserve(p, p->cap / 2) < 0) return NULL;
    }
    if (more < 0) return NULL;
    self->entries--;
    Py_RETURN_NONE;
}

static PyObject *index_postings(IndexObject *self, PyObject *term) {
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    PostingsObject *p = (PostingsObject *)PyDict_GetItemWithError(self->terms, term);
    if (p == NULL) {
        if (PyErr_Occurred()) Py_CLEAR(out);
        return out;
    }
    for (Py_ssize_t i = 0; i < p->n; i++) {
        PyObject *k = PyLong_FromLongLong(p->ids[i]), *v = PyFloat_FromDouble(p->ws[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(out, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return out;
}

/* --- search ------------------------------------------------------------------------------------- */

/* a small open-addressing table: entry id -> running sum */
typedef struct {
    long long key;
    double stamp;
    double sum;
    Py_ssize_t order; /* place in the order of first additions, -1 before the first */
    int used;
} slot_t;

static inline size_t mix(long long key) {
    uint64_t x = (uint64_t)key;
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static inline slot_t *table_find(slot_t *slots, size_t mask, long long key) {
    size_t i = mix(key) & mask;
    for (;;) {
        slot_t *s = &slots[i];
        if (!s->used || s->key == key) return s;
        i = (i + 1) & mask;
    }
}

typedef struct {
    PyObject *term; /* borrowed from the query vector */
    PostingsObject *p; /* borrowed from the index */
    double w, b;
    int minor;
} active_t;

static int by_bound_then_term(const void *x, const void *y) {
    const active_t *a = *(active_t *const *)x, *b = *(active_t *const *)y;
    if (a->b < b->b) return -1;
    if (a->b > b->b) return 1;
    return PyUnicode_Compare(a->term, b->term); /* terms are distinct str */
}

/* not a.isdisjoint(b), for the small name sets */
static int intersects(PyObject *a, PyObject *b) {
    if (!PyAnySet_Check(a) || !PyAnySet_Check(b)) {
        PyObject *r = PyObject_CallMethod(a, "isdisjoint", "O", b);
        if (r == NULL) return -1;
        int disjoint = PyObject_IsTrue(r);
        Py_DECREF(r);
        return disjoint < 0 ? -1 : !disjoint;
    }
    if (PySet_GET_SIZE(a) > PySet_GET_SIZE(b)) {
        PyObject *t = a;
        a = b;
        b = t;
    }
    PyObject *it = PyObject_GetIter(a), *item;
    if (it == NULL) return -1;
    int found = 0;
    while (!found && (item = PyIter_Next(it)) != NULL) {
        found = PySet_Contains(b, item);
        Py_DECREF(item);
    }
    Py_DECREF(it);
    if (found < 0 || PyErr_Occurred()) return -1;
    return found;
}

PyDoc_STRVAR(search_doc,
"search(vec, common, join, confident, syndicated, ts, window, half_inv_scale2, names, specific)\n"
"-> (found, skipped)\n\nSee monitor.events.scan.WindowIndexPy.search.");

static PyObject *index_search(IndexObject *self, PyObject *args) {
    PyObject *vec, *names, *specific;
    double common, join, confident, syndicated, ts, window, h;
    if (!PyArg_ParseTuple(args, "O!dddddddOO:search", &PyDict_Type, &vec, &common, &join, &confident,
                          &syndicated, &ts, &window, &h, &names, &specific))
        return NULL;
    Py_ssize_t n_vec = PyDict_GET_SIZE(vec), n_active = 0, opened_total = 0, n_open = 0;
    active_t *active = PyMem_Malloc(sizeof(active_t) * (n_vec + 1));
    active_t **sorted = PyMem_Malloc(sizeof(active_t *) * (n_vec + 1));
    slot_t *slots = NULL;
    Py_ssize_t *order = NULL;
    PyObject *skipped = PyList_New(0), *found = NULL, *result = NULL;
    if (active == NULL || sorted == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (skipped == NULL) goto done;

    double bound = 0.0; /* most that the skipped common terms can add to any cosine */
    PyObject *term, *value;
    PostingsObject *p;
    double w;
    Py_ssize_t pos = 0;
    int more;
    while ((more = next_term(self, vec, &pos, &term, &value, &w, &p)) > 0) {
        if (p == NULL) continue;
        if ((double)p->n > common) {
            PyObject *pair = PyTuple_Pack(2, term, value);
            if (pair == NULL || PyList_Append(skipped, pair) < 0) {
                Py_XDECREF(pair);
                goto done;
            }
            Py_DECREF(pair);
            bound = bound + w * p->maxw;
        } else {
            active_t *a = &active[n_active];
            a->term = term;
            a->p = p;
            a->w = w;
            a->b = w * p->maxw;
            a->minor = 0;
            sorted[n_active++] = a;
            opened_total += p->n;
        }
    }
    if (more < 0) goto done;
    double floor_ = (syndicated < join ? syndicated : join) - bound;
    /* Terms whose bounds add up to less than the floor open no candidates (see the Python twin). */
    qsort(sorted, n_active, sizeof(active_t *), by_bound_then_term);
    if (PyErr_Occurred()) goto done;
    double reach = 0.0;
    for (Py_ssize_t k = 0; k < n_active; k++) {
        if (reach + sorted[k]->b >= floor_) break;
        reach = reach + sorted[k]->b;
        sorted[k]->minor = 1;
        opened_total -= sorted[k]->p->n;
    }

    size_t cap = 16;
    while (cap < (size_t)opened_total * 2 + 1) cap <<= 1;
    size_t mask = cap - 1;
    slots = PyMem_Calloc(cap, sizeof(slot_t));
    order = PyMem_Malloc(sizeof(Py_ssize_t) * (opened_total + 1));
    if (slots == NULL || order == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    /* The entries that terms which are not minor open (a minor term adds only to those). */
    for (Py_ssize_t i = 0; i < n_active; i++) {
        if (active[i].minor) continue;
        const PostingsObject *p = active[i].p;
        for (Py_ssize_t j = 0; j < p->n; j++) {
            slot_t *s = table_find(slots, mask, p->ids[j]);
            if (!s->used) {
                s->used = 1;
                s->key = p->ids[j];
                s->stamp = p->ts[j];
                s->order = -1;
            }
        }
    }
    /* The sums, term by term in the vector's order, each entry's first addition giving its place. */
    for (Py_ssize_t i = 0; i < n_active; i++) {
        const PostingsObject *p = active[i].p;
        double w = active[i].w;
        for (Py_ssize_t j = 0; j < p->n; j++) {
            slot_t *s = table_find(slots, mask, p->ids[j]);
            if (!s->used) continue; /* a minor term's entry that nothing else opened */
            double x = w * p->ws[j];
            if (s->order < 0) {
                s->order = n_open;
                order[n_open++] = s - slots;
                s->sum = 0.0 + x;
            } else {
                s->sum = s->sum + x;
            }
        }
    }

    found = PyList_New(0);
    if (found == NULL) goto done;
    for (Py_ssize_t k = 0; k < n_open; k++) {
        slot_t *s = &slots[order[k]];
        double partial = s->sum;
        if (partial < floor_) continue;
        double upper = partial + bound;
        double gap = fabs(ts - s->stamp);
        if (gap > window) continue;
        double decay = exp(-gap * gap * h);
        double decayed = upper * decay;
        PyObject *eid = NULL;
        int keep = upper >= syndicated || (decayed >= join && decayed >= confident);
        if (!keep && decayed >= join) { /* below `confident`: only an entry that names someone q names */
            eid = PyLong_FromLongLong(s->key);
            if (eid == NULL) goto fail;
            PyObject *theirs = PyObject_GetItem(specific, eid);
            if (theirs == NULL) {
                Py_DECREF(eid);
                goto fail;
            }
            keep = intersects(names, theirs);
            Py_DECREF(theirs);
            if (keep < 0) {
                Py_DECREF(eid);
                goto fail;
            }
        }
        if (!keep) {
            Py_XDECREF(eid);
            continue;
        }
        if (eid == NULL && (eid = PyLong_FromLongLong(s->key)) == NULL) goto fail;
        PyObject *row = Py_BuildValue("(dNdd)", upper, eid, decay, partial); /* N: the row takes eid */
        if (row == NULL || PyList_Append(found, row) < 0) {
            Py_XDECREF(row);
            goto fail;
        }
        Py_DECREF(row);
    }
    result = PyTuple_Pack(2, found, skipped);
    goto done;
fail:
    Py_CLEAR(found);
done:
    Py_XDECREF(found);
    Py_XDECREF(skipped);
    PyMem_Free(active);
    PyMem_Free(sorted);
    PyMem_Free(slots);
    PyMem_Free(order);
    return result;
}

static PyMethodDef index_methods[] = {
    {"add", (PyCFunction)index_add, METH_VARARGS, "add(eid, ts, vec): index an entry's vector."},
    {"remove", (PyCFunction)index_remove, METH_VARARGS, "remove(eid, vec): take out an entry."},
    {"postings", (PyCFunction)index_postings, METH_O,
     "postings(term) -> {eid: weight}, in the order the entries were added."},
    {"search", (PyCFunction)index_search, METH_VARARGS, search_doc},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods index_as_sequence = {
    .sq_length = (lenfunc)index_len,
};

static PyTypeObject IndexType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "monitor.events._scan.WindowIndex",
    .tp_basicsize = sizeof(IndexObject),
    .tp_dealloc = (destructor)index_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Inverted index over the window's entry vectors (see monitor.events.scan.WindowIndexPy).",
    .tp_traverse = (traverseproc)index_traverse,
    .tp_clear = (inquiry)index_clear,
    .tp_methods = index_methods,
    .tp_as_sequence = &index_as_sequence,
    .tp_new = index_new,
};

/* --- dot products over term -> weight dicts --------------------------------------------------- */

/* b.get(term, 0.0) as a double: 0, or -1 with an exception set */
static int weight_in(PyObject *b, PyObject *term, double *y) {
    *y = 0.0;
    PyObject *wb = PyDict_GetItemWithError(b, term);
    if (wb == NULL) return PyErr_Occurred() ? -1 : 0;
    return as_weight(wb, y);
}

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
        double w;
        if (as_weight(wa, &w) < 0) return NULL;
        n2 = n2 + w * w;
        double y;
        if (weight_in(b, term, &y) < 0) return NULL;
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
        double w;
        if (as_weight(PyTuple_GET_ITEM(item, 1), &w) < 0) return NULL;
        double y;
        if (weight_in(b, PyTuple_GET_ITEM(item, 0), &y) < 0) return NULL;
        s = s + w * y;
    }
    return PyFloat_FromDouble(s);
}

/* --- centroid sums in fixed point -------------------------------------------------------------- */

PyDoc_STRVAR(fixed_doc, "fixed(vec, scale) -> dict\n\nSee monitor.events.scan.fixed_py.");

static PyObject *fixed(PyObject *self, PyObject *args) {
    PyObject *vec;
    double scale;
    if (!PyArg_ParseTuple(args, "O!d:fixed", &PyDict_Type, &vec, &scale)) return NULL;
    PyObject *out = PyDict_New();
    if (out == NULL) return NULL;
    PyObject *term, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(vec, &pos, &term, &value)) {
        double w;
        if (as_weight(value, &w) < 0) goto fail;
        /* Python's round() of a float: half away from zero, then ties to even */
        double x = w * scale, r = round(x);
        if (fabs(x - r) == 0.5) r = 2.0 * round(x / 2.0);
        PyObject *n = PyLong_FromDouble(r);
        if (n == NULL) goto fail;
        int rc = PyDict_SetItem(out, term, n);
        Py_DECREF(n);
        if (rc < 0) goto fail;
    }
    return out;
fail:
    Py_DECREF(out);
    return NULL;
}

/* Values beyond this (in absolute value) go to the Python twin: with |x|, |old|, |new| below 2^56
 * and at most MAX_CENTROID_TERMS terms, every square and their sum fit in 128 bits. */
#define CENTROID_LIMIT (1LL << 56)
#define MAX_CENTROID_TERMS 1024

PyDoc_STRVAR(add_to_centroid_doc,
"add_to_centroid(centroid, fixed, sign) -> int\n\nSee monitor.events.scan.add_to_centroid_py. Raises\n"
"OverflowError, before changing anything, for values it cannot sum exactly in 128 bits.");

static PyObject *add_to_centroid(PyObject *self, PyObject *args) {
    PyObject *centroid, *fixed_vec;
    int sign;
    if (!PyArg_ParseTuple(args, "O!O!i:add_to_centroid", &PyDict_Type, &centroid, &PyDict_Type, &fixed_vec,
                          &sign))
        return NULL;
    if (sign != 1 && sign != -1) {
        PyErr_SetString(PyExc_ValueError, "add_to_centroid: sign must be 1 or -1");
        return NULL;
    }
#if defined(__SIZEOF_INT128__)
    Py_ssize_t n = PyDict_GET_SIZE(fixed_vec);
    if (n > MAX_CENTROID_TERMS) goto too_large;
    long long xs[MAX_CENTROID_TERMS], olds[MAX_CENTROID_TERMS];
    PyObject *term, *value;
    Py_ssize_t pos = 0, i = 0;
    /* first every value, checked: nothing changes unless all of it can be summed here */
    while (PyDict_Next(fixed_vec, &pos, &term, &value)) {
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (x == -1 && PyErr_Occurred()) return NULL;
        if (overflow || x >= CENTROID_LIMIT || x <= -CENTROID_LIMIT) goto too_large;
        long long old = 0;
        PyObject *ov = PyDict_GetItemWithError(centroid, term);
        if (ov == NULL && PyErr_Occurred()) return NULL;
        if (ov != NULL) {
            old = PyLong_AsLongLongAndOverflow(ov, &overflow);
            if (old == -1 && PyErr_Occurred()) return NULL;
            if (overflow || old >= CENTROID_LIMIT || old <= -CENTROID_LIMIT) goto too_large;
        }
        long long nw = old + sign * x;
        if (nw >= CENTROID_LIMIT || nw <= -CENTROID_LIMIT) goto too_large;
        xs[i] = x;
        olds[i] = old;
        i++;
    }
    __int128 delta = 0;
    pos = 0;
    i = 0;
    while (PyDict_Next(fixed_vec, &pos, &term, &value)) {
        long long old = olds[i], nw = old + sign * xs[i];
        i++;
        delta += (__int128)nw * nw - (__int128)old * old;
        if (nw) {
            PyObject *v = PyLong_FromLongLong(nw);
            if (v == NULL) return NULL;
            int rc = PyDict_SetItem(centroid, term, v);
            Py_DECREF(v);
            if (rc < 0) return NULL;
        } else if (PyDict_DelItem(centroid, term) < 0) {
            return NULL;
        }
    }
    if (delta >= LLONG_MIN && delta <= LLONG_MAX) return PyLong_FromLongLong((long long)delta);
    PyObject *hi = PyLong_FromLongLong((long long)(delta >> 64)), *shift = PyLong_FromLong(64),
             *lo = PyLong_FromUnsignedLongLong((unsigned long long)delta), *high = NULL, *sum = NULL;
    if (hi && shift && lo) high = PyNumber_Lshift(hi, shift);
    if (high) sum = PyNumber_Add(high, lo);
    Py_XDECREF(hi);
    Py_XDECREF(shift);
    Py_XDECREF(lo);
    Py_XDECREF(high);
    return sum;
too_large:
#endif
    PyErr_SetString(PyExc_OverflowError, "add_to_centroid: values too large to sum here");
    return NULL;
}

static PyMethodDef methods[] = {
    {"lead_cosine", lead_cosine, METH_VARARGS, lead_cosine_doc},
    {"dot", dot, METH_VARARGS, dot_doc},
    {"fixed", fixed, METH_VARARGS, fixed_doc},
    {"add_to_centroid", add_to_centroid, METH_VARARGS, add_to_centroid_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "Compiled twins of monitor.events.scan.", -1, methods,
};

PyMODINIT_FUNC PyInit__scan(void) {
    if (PyType_Ready(&PostingsType) < 0 || PyType_Ready(&IndexType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    Py_INCREF(&IndexType);
    if (PyModule_AddObject(m, "WindowIndex", (PyObject *)&IndexType) < 0) {
        Py_DECREF(&IndexType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}

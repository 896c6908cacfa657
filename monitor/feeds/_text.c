/* Text normalisation, the part compiled: white space collapsed (monitor/feeds/normalize.py has the
 * same in Python: collapse_space_py). It returns exactly what its Python twin returns; the twin
 * spends its time making a str of every word only to join them again.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

PyDoc_STRVAR(collapse_space_doc,
"collapse_space(text) -> str\n\nSee monitor.feeds.normalize.collapse_space_py.");

/* collapse_space of ASCII text, byte by byte (str.split() splits ASCII at \t\n\v\f\r, \x1c-\x1f and space) */
static PyObject *collapse_ascii(const unsigned char *s, Py_ssize_t n) {
    PyObject *result = PyUnicode_New(n, 127);
    if (result == NULL) return NULL;
    unsigned char *out = PyUnicode_DATA(result);
    Py_ssize_t len = 0;
    int line_has_words = 0, gap = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '\n') {
            line_has_words = 0;
            gap = 0;
        } else if (c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f)) {
            gap = 1;
        } else {
            if (!line_has_words) {
                if (len) out[len++] = '\n';
                line_has_words = 1;
            } else if (gap) {
                out[len++] = ' ';
            }
            gap = 0;
            out[len++] = c;
        }
    }
    if (len == n) return result;
    PyObject *shorter = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, out, len);
    Py_DECREF(result);
    return shorter;
}

/* Each line (split at "\n" only) as its words (split at what str.split() splits at) joined by one
 * space; lines without words left out; the lines joined by "\n". */
static PyObject *collapse_space(PyObject *self, PyObject *text) {
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "collapse_space() takes a str, not %.100s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (PyUnicode_IS_ASCII(text)) return collapse_ascii(PyUnicode_DATA(text), n);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_UCS4 *out = PyMem_Malloc(sizeof(Py_UCS4) * (n ? n : 1));
    if (out == NULL) return PyErr_NoMemory();
    Py_ssize_t len = 0;
    int line_has_words = 0; /* the current line has a word already */
    int any_line = 0;       /* a line with words was written already */
    int gap = 0;            /* white space seen since the current line's last word */
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '\n') {
            line_has_words = 0;
            gap = 0;
            continue;
        }
        if (Py_UNICODE_ISSPACE(c)) {
            gap = 1;
            continue;
        }
        if (!line_has_words) {
            if (any_line) out[len++] = '\n';
            any_line = 1;
            line_has_words = 1;
        } else if (gap) {
            out[len++] = ' ';
        }
        gap = 0;
        out[len++] = c;
    }
    PyObject *result = PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, out, len);
    PyMem_Free(out);
    return result;
}

static PyMethodDef methods[] = {
    {"collapse_space", collapse_space, METH_O, collapse_space_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_text", "Compiled twin of normalize.collapse_space_py.", -1, methods,
};

PyMODINIT_FUNC PyInit__text(void) { return PyModule_Create(&module); }

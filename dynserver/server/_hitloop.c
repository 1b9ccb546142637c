/*
 * The UDP receive thread's loop in C: dynserver/server/udp.py's _Receiver._run, for the
 * packet-cache hits (the common query), with the interpreter out of the way.
 *
 * The loop blocks in recvmmsg(2) with the GIL released, answers the batch's cache hits
 * in place (the cache is the snapshot's Python dict, looked up with the query's key as
 * packet.py describes), counts them, charges the rate limiter from a credit table of its
 * own, sends the replies with sendmmsg(2), and hands every other query to the event
 * loop through a Python callable. It uses the message headers, buffers and address
 * slots the Python side allocated (udp.py's _MmsgBatch), so the event loop answers the
 * handed-over slots exactly as it does for the Python loop.
 *
 * Python is called only per batch (the snapshot's cache), for a slot handed over, for a
 * rotating reply's next tail, and when a (network, reply) runs out of credit: the
 * limiter itself stays in Python (dynserver/dns/rrl.py), charged in advance as udp.py's
 * _limit does.
 *
 * Swaps: the loop holds `fence` (a pthread mutex) from reading the snapshot to the end
 * of the batch's sendmmsg; HitLoop.fence() waits for it with the GIL released.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>

/* packet.py's contract */
#define ID_END 2
#define FLAGS 2
#define KEY_START 4
#define NOT_QUERY 0xF8
#define RD_BIT 0x01
#define STAT 2

/* rrl.py's verdicts */
#define V_ANSWER 0
#define V_SLIP 1
#define V_DROP 2

#define MAX_BATCH 256
#define CREDIT_SLOTS 4096 /* a power of two; cleared when a quarter full */

typedef struct {
    uint64_t network; /* 0: empty slot; else the client network, tagged (see network_of) */
    PyObject *tail;   /* strong reference: the entry's tail for RD clear */
    long left;
} Credit;

typedef struct {
    PyObject_HEAD
    int fd;
    int batch;
    int ipv4;
    Py_ssize_t recv_size;
    socklen_t name_len;
    struct mmsghdr *recv_msgs;
    struct mmsghdr *send_msgs;
    PyObject *packets;  /* () -> (cache dict, hits list) */
    PyObject *handover; /* (list of slots) -> bool: the loop answered them (False: stop) */
    PyObject *charge;   /* (network bytes, tail, count, now) -> (allowed, verdicts) or None */
    PyObject *slip;     /* (reply bytes) -> bytes: the slip reply */
    double credit_s;
    long nap_ns;
    int nap_below;
    volatile int stopping;
    long long naps;
    pthread_mutex_t fence;
    Credit *credits;
    int credits_used;
    double credits_until;
    /* per batch */
    PyObject *entries[MAX_BATCH]; /* each hit's cache entry, held until the batch ends */
    unsigned char unsent[MAX_BATCH];
} HitLoop;

static double
monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned char *
slot_data(HitLoop *self, int i)
{
    return (unsigned char *)self->recv_msgs[i].msg_hdr.msg_iov->iov_base;
}

static unsigned char *
slot_name(HitLoop *self, int i)
{
    return (unsigned char *)self->recv_msgs[i].msg_hdr.msg_name;
}

/* The client's network, as udp.py's _network reads it (IPv4 /24: the address's first 3
 * bytes; IPv6 /56: 7 bytes from offset 8 of the sockaddr), plus a tag bit so that no
 * network is 0 (the empty credit slot). */
static uint64_t
network_of(HitLoop *self, int i)
{
    const unsigned char *name = slot_name(self, i);
    uint64_t value = 0;
    if (self->ipv4) {
        memcpy(&value, name + 4, 3);
    } else {
        memcpy(&value, name + 8, 7);
    }
    return value | ((uint64_t)1 << 63);
}

static PyObject *
network_bytes(HitLoop *self, uint64_t network)
{
    unsigned char raw[8];
    memcpy(raw, &network, 8);
    return PyBytes_FromStringAndSize((const char *)raw, self->ipv4 ? 3 : 7);
}

static void
credits_clear(HitLoop *self)
{
    if (self->credits_used == 0)
        return;
    for (int k = 0; k < CREDIT_SLOTS; k++) {
        if (self->credits[k].network) {
            Py_CLEAR(self->credits[k].tail);
            self->credits[k].network = 0;
        }
    }
    self->credits_used = 0;
}

static Credit *
credit_find(HitLoop *self, uint64_t network, PyObject *tail, int insert)
{
    uint64_t h = network * 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(uintptr_t)tail >> 4);
    h ^= h >> 29;
    unsigned k = (unsigned)h & (CREDIT_SLOTS - 1);
    for (;;) {
        Credit *c = &self->credits[k];
        if (c->network == 0) {
            if (!insert)
                return NULL;
            if (self->credits_used >= CREDIT_SLOTS / 4) {
                credits_clear(self);
                return credit_find(self, network, tail, insert);
            }
            c->network = network;
            Py_INCREF(tail);
            c->tail = tail;
            c->left = 0;
            self->credits_used++;
            return c;
        }
        if (c->network == network && c->tail == tail)
            return c;
        k = (k + 1) & (CREDIT_SLOTS - 1);
    }
}

/* Answer the batch's cache hits in place; misses get entries[i] = NULL. Returns the
 * number of hits, or -1 with a Python error set. */
static int
serve_hits(HitLoop *self, int count, PyObject *cache)
{
    int served = 0;
    for (int i = 0; i < count; i++) {
        self->entries[i] = NULL;
        self->unsent[i] = 1;
        unsigned int size = self->recv_msgs[i].msg_len;
        unsigned char *data = slot_data(self, i);
        if (size < KEY_START || (data[FLAGS] & NOT_QUERY))
            continue;
        PyObject *key = PyBytes_FromStringAndSize((const char *)data + KEY_START, size - KEY_START);
        if (key == NULL)
            return -1;
        PyObject *hit = PyDict_GetItemWithError(cache, key); /* borrowed */
        Py_DECREF(key);
        if (hit == NULL) {
            if (PyErr_Occurred())
                return -1;
            continue;
        }
        if (!PyTuple_CheckExact(hit) || PyTuple_GET_SIZE(hit) < 3)
            continue;
        PyObject *tail = PyTuple_GET_ITEM(hit, data[FLAGS] & RD_BIT);
        PyObject *owned = NULL;
        if (!PyBytes_CheckExact(tail)) { /* a rotating reply: the next tail */
            owned = PyIter_Next(tail);
            if (owned == NULL) {
                if (PyErr_Occurred())
                    return -1;
                continue;
            }
            if (!PyBytes_CheckExact(owned)) {
                Py_DECREF(owned);
                continue;
            }
            tail = owned;
        }
        Py_ssize_t length = PyBytes_GET_SIZE(tail);
        if (length + ID_END > self->recv_size) {
            Py_XDECREF(owned);
            continue;
        }
        memcpy(data + ID_END, PyBytes_AS_STRING(tail), (size_t)length);
        self->send_msgs[i].msg_hdr.msg_iov->iov_len = (size_t)(length + ID_END);
        Py_XDECREF(owned);
        Py_INCREF(hit); /* kept while the batch is limited: a Python call may let the loop
                         * replace the cache's entries meanwhile */
        self->entries[i] = hit;
        self->unsent[i] = 0;
        served++;
    }
    return served;
}

/* hits[entry[STAT]] += n for the batch's hits; 0, or -1 with an error set. */
static int
count_hits(HitLoop *self, int count, PyObject *hits)
{
    Py_ssize_t stats[MAX_BATCH];
    long counts[MAX_BATCH];
    int distinct = 0;
    for (int i = 0; i < count; i++) {
        PyObject *entry = self->entries[i];
        if (entry == NULL)
            continue;
        Py_ssize_t stat = PyLong_AsSsize_t(PyTuple_GET_ITEM(entry, STAT));
        if (stat == -1 && PyErr_Occurred())
            return -1;
        int k = 0;
        while (k < distinct && stats[k] != stat)
            k++;
        if (k == distinct) {
            stats[distinct] = stat;
            counts[distinct++] = 0;
        }
        counts[k]++;
    }
    for (int k = 0; k < distinct; k++) {
        Py_ssize_t stat = stats[k];
        if (stat < 0 || stat >= PyList_GET_SIZE(hits))
            continue; /* as a list would say IndexError: a snapshot bug, not a reason to stop */
        PyObject *old = PyList_GET_ITEM(hits, stat);
        PyObject *n = PyLong_FromLong(counts[k]);
        if (n == NULL)
            return -1;
        PyObject *sum = PyNumber_Add(old, n);
        Py_DECREF(n);
        if (sum == NULL)
            return -1;
        PyList_SET_ITEM(hits, stat, sum);
        Py_DECREF(old);
    }
    return 0;
}

/* Charge the limiter with the batch's hits (udp.py's _limit): each (network, reply)
 * spends its credit first; out of credit, `charge` takes tokens (and credit ahead) from
 * the limiter, and says what happens to replies over the limit. 0, or -1 with an error. */
static int
limit_hits(HitLoop *self, int count)
{
    uint64_t key_network[MAX_BATCH];
    PyObject *key_tail[MAX_BATCH];
    long key_count[MAX_BATCH];
    long key_allowed[MAX_BATCH];
    long key_seen[MAX_BATCH];
    PyObject *key_verdicts[MAX_BATCH];
    int key_of[MAX_BATCH];
    int keys = 0;
    int over = 0;
    int result = -1;
    double now = monotonic();

    if (now >= self->credits_until) {
        credits_clear(self);
        self->credits_until = now + self->credit_s;
    }
    for (int i = 0; i < count; i++) {
        key_of[i] = -1;
        PyObject *entry = self->entries[i];
        if (entry == NULL)
            continue;
        uint64_t network = network_of(self, i);
        PyObject *tail = PyTuple_GET_ITEM(entry, 0);
        int k = 0;
        while (k < keys && !(key_network[k] == network && key_tail[k] == tail))
            k++;
        if (k == keys) {
            key_network[k] = network;
            key_tail[k] = tail;
            key_count[k] = 0;
            key_seen[k] = 0;
            key_verdicts[k] = NULL;
            keys++;
        }
        key_count[k]++;
        key_of[i] = k;
    }
    for (int k = 0; k < keys; k++) {
        long n = key_count[k];
        Credit *credit = credit_find(self, key_network[k], key_tail[k], 1);
        long left = credit->left;
        key_allowed[k] = n;
        if (left >= n) {
            credit->left = left - n;
            continue;
        }
        PyObject *network = network_bytes(self, key_network[k]);
        if (network == NULL)
            goto done;
        PyObject *answer = PyObject_CallFunction(self->charge, "OOld", network, key_tail[k], n - left, now);
        Py_DECREF(network);
        if (answer == NULL)
            goto done;
        long got = 0;
        PyObject *verdicts = NULL;
        if (!PyArg_ParseTuple(answer, "lO", &got, &verdicts)) {
            Py_DECREF(answer);
            goto done;
        }
        /* the credit table may have been cleared by a reentrant call: look again */
        credit = credit_find(self, key_network[k], key_tail[k], 1);
        long allowed = left + got;
        if (allowed >= n) {
            credit->left = allowed - n;
            Py_DECREF(answer);
            continue;
        }
        credit->left = 0;
        key_allowed[k] = allowed;
        Py_INCREF(verdicts);
        key_verdicts[k] = verdicts;
        Py_DECREF(answer);
        over = 1;
    }
    if (over) {
        for (int i = 0; i < count; i++) {
            int k = key_of[i];
            if (k < 0 || key_verdicts[k] == NULL)
                continue;
            long seen = key_seen[k]++;
            if (seen < key_allowed[k])
                continue;
            PyObject *item = PySequence_GetItem(key_verdicts[k], seen - key_allowed[k]);
            if (item == NULL)
                goto done;
            long verdict = PyLong_AsLong(item);
            Py_DECREF(item);
            if (verdict == -1 && PyErr_Occurred())
                goto done;
            if (verdict == V_DROP) {
                self->unsent[i] = 1;
            } else if (verdict == V_SLIP) {
                struct iovec *iov = self->send_msgs[i].msg_hdr.msg_iov;
                PyObject *reply = PyBytes_FromStringAndSize((const char *)iov->iov_base, (Py_ssize_t)iov->iov_len);
                if (reply == NULL)
                    goto done;
                PyObject *slipped = PyObject_CallOneArg(self->slip, reply);
                Py_DECREF(reply);
                if (slipped == NULL)
                    goto done;
                if (!PyBytes_Check(slipped) || PyBytes_GET_SIZE(slipped) > self->recv_size) {
                    Py_DECREF(slipped);
                    self->unsent[i] = 1;
                    continue;
                }
                memcpy(iov->iov_base, PyBytes_AS_STRING(slipped), (size_t)PyBytes_GET_SIZE(slipped));
                iov->iov_len = (size_t)PyBytes_GET_SIZE(slipped);
                Py_DECREF(slipped);
            }
        }
    }
    result = 0;
done:
    for (int k = 0; k < keys; k++)
        Py_XDECREF(key_verdicts[k]);
    return result;
}

/* sendmmsg the slots 0..count-1 not marked unsent, each run of neighbours in one call
 * (the GIL released: the socket never blocks, but the kernel's work is worth sharing). */
static void
send_replies(HitLoop *self, int count)
{
    int first = 0;
    while (first < count) {
        if (self->unsent[first]) {
            first++;
            continue;
        }
        int end = first;
        while (end < count && !self->unsent[end])
            end++;
        while (first < end) {
            int done;
            Py_BEGIN_ALLOW_THREADS
            done = sendmmsg(self->fd, self->send_msgs + first, (unsigned)(end - first), MSG_DONTWAIT);
            Py_END_ALLOW_THREADS
            if (done > 0) {
                first += done;
                continue;
            }
            if (errno == EAGAIN || errno == ENOBUFS)
                return; /* a full send buffer: UDP may drop */
            first++;    /* this one failed (an unreachable client): send the rest */
        }
    }
}

/* One batch under the fence: the hits answered, counted, limited and sent. Returns the
 * handed-over slots as a list (new reference), Py_None (none), or NULL with an error. */
static PyObject *
serve_batch(HitLoop *self, int count)
{
    PyObject *source = PyObject_CallNoArgs(self->packets);
    if (source == NULL)
        return NULL;
    PyObject *cache = NULL, *hits = NULL;
    if (!PyTuple_Check(source) || PyTuple_GET_SIZE(source) != 2 || !PyDict_Check(PyTuple_GET_ITEM(source, 0)) ||
        !PyList_Check(PyTuple_GET_ITEM(source, 1))) {
        Py_DECREF(source);
        PyErr_SetString(PyExc_TypeError, "packets() must return (dict, list)");
        return NULL;
    }
    cache = PyTuple_GET_ITEM(source, 0);
    hits = PyTuple_GET_ITEM(source, 1);
    PyObject *result = NULL;
    int served = serve_hits(self, count, cache);
    if (served < 0)
        goto done;
    if (served > 0) {
        if (count_hits(self, count, hits) < 0)
            goto done;
        if (self->charge != Py_None && limit_hits(self, count) < 0)
            goto done;
    }
    send_replies(self, count);
    if (served == count) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyList_New(0);
    if (result == NULL)
        goto done;
    for (int i = 0; i < count; i++) {
        if (self->entries[i] != NULL)
            continue;
        PyObject *slot = PyLong_FromLong(i);
        if (slot == NULL || PyList_Append(result, slot) < 0) {
            Py_XDECREF(slot);
            Py_CLEAR(result);
            goto done;
        }
        Py_DECREF(slot);
    }
done:
    for (int i = 0; i < count; i++)
        Py_CLEAR(self->entries[i]);
    Py_DECREF(source);
    return result;
}

static PyObject *
HitLoop_run(HitLoop *self, PyObject *Py_UNUSED(ignored))
{
    double nap_s = (double)self->nap_ns * 1e-9;
    double waited_from = monotonic();
    int last = self->batch;
    while (!self->stopping) {
        /* recvmmsg wrote each used header's address length and flags: set them back */
        for (int i = 0; i < last; i++) {
            self->recv_msgs[i].msg_hdr.msg_namelen = self->name_len;
            self->recv_msgs[i].msg_hdr.msg_flags = 0;
        }
        int count;
        double now;
        Py_BEGIN_ALLOW_THREADS
        count = recvmmsg(self->fd, self->recv_msgs, (unsigned)self->batch, MSG_WAITFORONE, NULL);
        now = monotonic();
        Py_END_ALLOW_THREADS
        /* queries come densely when this batch came within a nap of the last one's end */
        int dense = now - waited_from < nap_s;
        if (count <= 0 || self->stopping) {
            /* a timeout (the idle wake-up), a signal, or the empty messages of a shut-down
             * socket: nothing to answer */
            last = count > 0 ? count : 0;
            waited_from = monotonic();
            continue;
        }
        last = count;
        PyObject *handed;
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->fence);
        Py_END_ALLOW_THREADS
        handed = serve_batch(self, count);
        pthread_mutex_unlock(&self->fence);
        if (handed == NULL)
            return NULL;
        if (handed != Py_None) {
            PyObject *answered = PyObject_CallOneArg(self->handover, handed);
            Py_DECREF(handed);
            if (answered == NULL)
                return NULL;
            int keep = PyObject_IsTrue(answered);
            Py_DECREF(answered);
            if (keep <= 0)
                return keep < 0 ? NULL : Py_NewRef(Py_False);
        } else {
            Py_DECREF(handed);
        }
        if (dense && count < self->nap_below && self->nap_ns > 0) {
            struct timespec pause = {0, self->nap_ns};
            self->naps++;
            Py_BEGIN_ALLOW_THREADS
            nanosleep(&pause, NULL);
            Py_END_ALLOW_THREADS
        }
        waited_from = monotonic();
    }
    Py_RETURN_TRUE;
}

static PyObject *
HitLoop_stop(HitLoop *self, PyObject *Py_UNUSED(ignored))
{
    self->stopping = 1;
    Py_RETURN_NONE;
}

static PyObject *
HitLoop_fence(HitLoop *self, PyObject *Py_UNUSED(ignored))
{
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->fence);
    pthread_mutex_unlock(&self->fence);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static int
HitLoop_init(HitLoop *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fd", "recv_msgs", "send_msgs", "batch", "recv_size", "ipv4", "packets",
                            "handover", "charge", "slip", "credit_s", "nap_ns", "nap_below", NULL};
    unsigned long long recv_at = 0, send_at = 0;
    PyObject *packets, *handover, *charge, *slip;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "iKKinpOOOOdli", names, &self->fd, &recv_at, &send_at,
                                     &self->batch, &self->recv_size, &self->ipv4, &packets, &handover,
                                     &charge, &slip, &self->credit_s, &self->nap_ns, &self->nap_below))
        return -1;
    if (self->batch <= 0 || self->batch > MAX_BATCH || recv_at == 0 || send_at == 0) {
        PyErr_SetString(PyExc_ValueError, "a batch of 1..256 message headers");
        return -1;
    }
    if (self->nap_ns < 0 || self->nap_ns >= 1000000000L) {
        PyErr_SetString(PyExc_ValueError, "nap_ns in 0..999999999");
        return -1;
    }
    self->recv_msgs = (struct mmsghdr *)(uintptr_t)recv_at;
    self->send_msgs = (struct mmsghdr *)(uintptr_t)send_at;
    self->name_len = self->ipv4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    Py_XSETREF(self->packets, Py_NewRef(packets));
    Py_XSETREF(self->handover, Py_NewRef(handover));
    Py_XSETREF(self->charge, Py_NewRef(charge));
    Py_XSETREF(self->slip, Py_NewRef(slip));
    if (self->credits == NULL) {
        self->credits = PyMem_Calloc(CREDIT_SLOTS, sizeof(Credit));
        if (self->credits == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

static PyObject *
HitLoop_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwargs))
{
    HitLoop *self = (HitLoop *)type->tp_alloc(type, 0);
    if (self != NULL)
        pthread_mutex_init(&self->fence, NULL);
    return (PyObject *)self;
}

static int
HitLoop_traverse(HitLoop *self, visitproc visit, void *arg)
{
    Py_VISIT(self->packets);
    Py_VISIT(self->handover);
    Py_VISIT(self->charge);
    Py_VISIT(self->slip);
    return 0;
}

static int
HitLoop_clear(HitLoop *self)
{
    Py_CLEAR(self->packets);
    Py_CLEAR(self->handover);
    Py_CLEAR(self->charge);
    Py_CLEAR(self->slip);
    if (self->credits != NULL)
        credits_clear(self);
    return 0;
}

static void
HitLoop_dealloc(HitLoop *self)
{
    PyObject_GC_UnTrack(self);
    HitLoop_clear(self);
    PyMem_Free(self->credits);
    pthread_mutex_destroy(&self->fence);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
HitLoop_get_naps(HitLoop *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLongLong(self->naps);
}

static PyObject *
HitLoop_get_credits(HitLoop *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->credits_used);
}

static PyMethodDef HitLoop_methods[] = {
    {"run", (PyCFunction)HitLoop_run, METH_NOARGS,
     "Serve batches until stop(); True when stopped, False when the handover said stop."},
    {"stop", (PyCFunction)HitLoop_stop, METH_NOARGS, "Make run() return after its current batch."},
    {"fence", (PyCFunction)HitLoop_fence, METH_NOARGS,
     "Return once no batch that read the snapshot before this call is still being sent."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef HitLoop_getset[] = {
    {"naps", (getter)HitLoop_get_naps, NULL, "naps taken", NULL},
    {"credits", (getter)HitLoop_get_credits, NULL, "(network, reply) keys holding credit", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HitLoopType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dynserver.server._hitloop.HitLoop",
    .tp_basicsize = sizeof(HitLoop),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The receive thread's batch loop for packet-cache hits (see udp.py).",
    .tp_new = HitLoop_new,
    .tp_init = (initproc)HitLoop_init,
    .tp_dealloc = (destructor)HitLoop_dealloc,
    .tp_traverse = (traverseproc)HitLoop_traverse,
    .tp_clear = (inquiry)HitLoop_clear,
    .tp_methods = HitLoop_methods,
    .tp_getset = HitLoop_getset,
};

static struct PyModuleDef hitloop_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "dynserver.server._hitloop",
    .m_doc = "The UDP receive thread's loop for packet-cache hits, in C (see udp.py).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__hitloop(void)
{
    if (PyType_Ready(&HitLoopType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&hitloop_module);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "HitLoop", (PyObject *)&HitLoopType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}

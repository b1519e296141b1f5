# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""The compiled twin of the per-packet front end: Segment, the fused pcap reader, decoding.

Theory of operation
-------------------
The pure-Python modules are the reference; this module is their translation to C-level
code, function for function, and ``tcptrace_py.implementation`` picks one of the two once per
process (``TCPTRACE_PY_PURE=1`` forces the reference). Nothing here decides anything the
reference does not: every branch names the reference function it stands for, and
``tests/test_engines.py`` runs every capture through both and compares every output.

What is compiled today (the stages a packet crosses first):

1. :class:`Segment` - the twin of ``segment.Segment``: the same fields, constructor and
   properties, as an extension type. Built from C without calling ``__init__``.
2. :func:`read_pcap_segments` - the twin of ``capture.pcap._records`` in segment mode: the
   same 1 MiB chunks, damage, timestamp and counting rules; records are decoded from a
   pointer into the chunk, no slice and no tuple per frame.
3. :class:`Decoder` - the twin of ``decode.Decoder``'s common cases: Ethernet (any number
   of VLAN/QinQ tags), Linux cooked v1/v2, raw IP, BSD loopback; IPv4 (with options) and
   IPv6 (no extension headers) carrying TCP with any options. Every other frame (tunnels,
   fragments, ICMP, non-TCP, extension headers, cut or malformed headers, other link types)
   is handed to the reference decoder with its bytes, which counts the skip reasons: so the
   diagnostics are the reference's by construction.

Safety rule: every read from a frame is preceded by an explicit length check against the
captured length (``n``); Cython's own bounds checking is off. The Hypothesis and atheris
fuzz targets run against this module as well as the reference.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_CheckExact
from libc.limits cimport LLONG_MAX, LLONG_MIN
from libc.stdint cimport int32_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.math cimport fabs, signbit, sqrt
from libc.stdio cimport snprintf
from libc.string cimport memcmp, memcpy, memmove, memset
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.object cimport PyTypeObject
from cpython.mem cimport PyMem_Calloc, PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.dict cimport PyDict_GetItemWithError


cdef extern from "Python.h":
    object _PyDict_NewPresized(Py_ssize_t minused)


# ---------------------------------------------------------------- constants (segment.py)
cdef long long FIN = 0x01
cdef long long SYN = 0x02

cdef object _EMPTY = ()

API_VERSION = 27
"""Bumped with every change of what this module offers; ``implementation`` refuses a build
whose number differs from its own (a stale extension beside newer Python sources)."""


cdef inline uint32_t be16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 8) | p[1]


cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]


cdef extern from *:
    """
    /* A new reference to ``o`` when it is None or of type ``t``, one of its direct
       subclasses (every twin class: ``implementation.twin``) or another subclass; else
       NULL with TypeError set.
       The checked cast ``<T?>o`` calls Cython's type test, which scans the type's MRO:
       ~25 instructions a call, ~4 calls a steady segment. */
    static inline PyObject* tcptrace_as(PyObject* o, PyTypeObject* t) {
        PyTypeObject* ot = Py_TYPE(o);
        if (ot == t || ot->tp_base == t || o == Py_None || PyType_IsSubtype(ot, t)) {
            Py_INCREF(o);
            return o;
        }
        PyErr_Format(PyExc_TypeError, "Cannot convert %.200s to %.200s",
                     ot->tp_name, t->tp_name);
        return NULL;
    }
    """
    object _as "tcptrace_as"(object o, type t)


cdef extern from *:
    """
    /* Whether ``t`` is the type remembered in ``*seen`` (with its version tag ``*tag``)
       and unchanged since: CPython gives a type a new version tag whenever one of its
       attributes, or a base's, changes (PyType_Modified), and never reuses a tag. */
    static inline int tcptrace_type_unchanged(PyObject* t, PyObject** seen,
                                              unsigned int* tag) {
        PyTypeObject* tp = (PyTypeObject*)t;
        return t == *seen && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
            && tp->tp_version_tag == *tag;
    }
    /* Remember ``t`` as in tcptrace_type_unchanged (not when it has no valid tag). */
    static inline void tcptrace_type_remember(PyObject* t, PyObject** seen,
                                              unsigned int* tag) {
        PyTypeObject* tp = (PyTypeObject*)t;
        if (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) {
            *seen = t;
            *tag = tp->tp_version_tag;
        }
    }
    """
    bint _type_unchanged "tcptrace_type_unchanged"(object t, PyObject** seen,
                                                   unsigned int* tag) noexcept
    void _type_remember "tcptrace_type_remember"(object t, PyObject** seen,
                                                 unsigned int* tag) noexcept


cdef struct _MethodCheck:
    # The last type found to keep one compiled method (borrowed: compared by address with
    # its version tag, see tcptrace_type_unchanged), for :func:`_keeps_method`.
    PyObject* seen
    unsigned int tag


cdef inline bint _keeps_method(object cls, str name, object method,
                               _MethodCheck* check) except -1:
    """``getattr(cls, name) is method``, the lookup skipped while ``cls`` is the type
    last found to keep it and unchanged since (a class attribute lookup was ~200
    instructions, several a record)."""
    if _type_unchanged(cls, &check.seen, &check.tag):
        return True
    if getattr(cls, name) is not method:
        return False
    _type_remember(cls, &check.seen, &check.tag)
    return True


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define tcptrace_prefetch(p) __builtin_prefetch((const void *)(p))
    #else
    #define tcptrace_prefetch(p) ((void)(p))
    #endif
    """
    void prefetch "tcptrace_prefetch"(const void* p) noexcept nogil


cdef extern from *:
    """
    /* An exact int's value when it fits 63 bits, read from its digits; 0 when this
       does not decide (the caller asks PyLong_AsLongLongAndOverflow). Python 3.11 keeps
       30-bit digits and the sign in ob_size: three digits hold every nanosecond time of
       this century (61 bits). From 3.12 the layout is private: its compact ints only. */
    static inline int tcptrace_ll_fast(PyObject* v, long long* out) {
    #if PY_VERSION_HEX >= 0x030C0000
        if (PyUnstable_Long_IsCompact((PyLongObject*)v)) {
            *out = (long long)PyUnstable_Long_CompactValue((PyLongObject*)v);
            return 1;
        }
        return 0;
    #elif PY_VERSION_HEX >= 0x030B0000 && PYLONG_BITS_IN_DIGIT == 30
        Py_ssize_t size = Py_SIZE(v);
        const digit* d = ((PyLongObject*)v)->ob_digit;
        unsigned long long u;
        switch (size < 0 ? -size : size) {
        case 0: *out = 0; return 1;
        case 1: u = d[0]; break;
        case 2: u = (unsigned long long)d[0] | ((unsigned long long)d[1] << 30); break;
        case 3:
            if (d[2] >= 8) return 0;
            u = (unsigned long long)d[0] | ((unsigned long long)d[1] << 30)
                | ((unsigned long long)d[2] << 60);
            break;
        default: return 0;
        }
        *out = size < 0 ? -(long long)u : (long long)u;
        return 1;
    #else
        (void)v; (void)out;
        return 0;
    #endif
    }
    """
    bint _ll_fast "tcptrace_ll_fast"(object v, long long* out) noexcept


cdef inline long long _exact_ll(object v, int* overflow) noexcept:
    """``PyLong_AsLongLongAndOverflow`` of an exact int ``v``, its common values read from
    the digits (~10 instructions against ~60: the record writer reads ~140 a connection)."""
    cdef long long x
    if _ll_fast(v, &x):
        overflow[0] = 0
        return x
    return PyLong_AsLongLongAndOverflow(v, overflow)


cdef long long _C_TIME_LIMIT = 1LL << 62


cdef inline object _split_int(object v, long long* out):
    """Keep ``v`` as a C integer where it can be one: None, with ``out`` set, when ``v`` is
    an exact int within +-2**62 (every frame number, every time a classic pcap can hold,
    and their differences: arithmetic on them in C is exact); else ``v`` itself, with
    ``out`` 0.

    Why: a segment's frame number and time, and the latest ones a connection, its analyzer,
    senders and statistics keep, were Python integers: two allocated per packet by the
    decoder and released when the next packet replaced them (~300 instructions a packet,
    ~4 % of a run). They are now pairs of fields, ``x_c`` and ``x_o``: the value is
    ``x_o`` unless that is None, then ``x_c`` (:func:`_joined`). The rare values a C
    integer cannot hold exactly (a pcapng time near 2**64 units, a frame number beyond
    2**63 in a test) stay objects, as before; None, which marks a C value, is refused."""
    cdef int overflow = 0
    if PyLong_CheckExact(v):
        out[0] = _exact_ll(v, &overflow)
        if overflow == 0 and -_C_TIME_LIMIT < out[0] < _C_TIME_LIMIT:
            return None
    elif v is None:
        raise TypeError("an integer is required, not None")
    out[0] = 0
    return v


cdef inline object _joined(long long c, object o):
    """The value a pair of fields holds (see :func:`_split_int`)."""
    if o is None:
        return c
    return o


cdef inline uint32_t le32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef inline uint32_t le16(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[1] << 8) | p[0]


# ---------------------------------------------------------------- Segment (segment.py)
@cython.no_gc
cdef class Segment:
    """One TCP segment as seen at the capture point (twin of ``segment.Segment``; the field
    documentation is there). Not tracked by the cyclic collector: its fields are ints,
    bytes and tuples of them, which cannot form a cycle, and one segment is allocated per
    packet (each would otherwise count towards a young-generation collection)."""

    cdef long long frame_c
    cdef object frame_o
    """``frame`` as a pair of fields (:func:`_split_int`): no integer object per packet."""
    cdef long long ts_c
    cdef object ts_o
    """``ts_ns`` likewise."""
    cdef object frame_box
    cdef object ts_box
    """``frame`` and ``ts_ns`` as the objects the full path passes around, each made once
    (:func:`_seg_frame`, :func:`_seg_ts`); None until asked for, and again whenever the
    value is written."""
    cdef public object src
    cdef public object dst
    cdef public int sport
    cdef public int dport
    cdef public long long seq
    cdef public long long ack
    cdef public int flags
    cdef public int window
    cdef public long long payload_len
    cdef public long long captured_payload
    cdef public int urgent
    cdef public int mss
    cdef public int wscale
    cdef public bint sack_permitted
    cdef public object sack
    cdef public long long tsval
    cdef public long long tsecr
    cdef public int ip_id
    cdef public int ttl
    cdef public bint header_truncated
    cdef public object other_options
    cdef public long long checksum
    cdef public int ecn

    def __init__(self, frame, ts_ns, src, dst, int sport, int dport, long long seq,
                 long long ack, int flags, int window, long long payload_len,
                 long long captured_payload=-1, int urgent=0, int mss=-1, int wscale=-1,
                 bint sack_permitted=False, sack=(), long long tsval=-1,
                 long long tsecr=-1, int ip_id=-1, int ttl=64, bint header_truncated=False,
                 other_options=(), long long checksum=0, int ecn=0):
        self.frame_o = _split_int(frame, &self.frame_c)
        self.ts_o = _split_int(ts_ns, &self.ts_c)
        self.src = src
        self.dst = dst
        self.sport = sport
        self.dport = dport
        self.seq = seq
        self.ack = ack
        self.flags = flags
        self.window = window
        self.payload_len = payload_len
        self.captured_payload = payload_len if captured_payload < 0 else captured_payload
        self.urgent = urgent
        self.mss = mss
        self.wscale = wscale
        self.sack_permitted = sack_permitted
        self.sack = sack
        self.tsval = tsval
        self.tsecr = tsecr
        self.ip_id = ip_id
        self.ttl = ttl
        self.header_truncated = header_truncated
        self.other_options = other_options
        self.checksum = checksum
        self.ecn = ecn

    @property
    def frame(self):
        return _seg_frame(self)

    @frame.setter
    def frame(self, value):
        self.frame_o = _split_int(value, &self.frame_c)
        self.frame_box = None

    @property
    def ts_ns(self):
        return _seg_ts(self)

    @ts_ns.setter
    def ts_ns(self, value):
        self.ts_o = _split_int(value, &self.ts_c)
        self.ts_box = None

    @property
    def truncated(self):
        """True when the capture holds fewer payload bytes than the IP header announced."""
        return self.captured_payload < self.payload_len or self.header_truncated

    @property
    def seg_len(self):
        """Sequence space the segment occupies: payload plus one for SYN and one for FIN."""
        return self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0)

    def __repr__(self):
        from tcptrace_py.segment import ReferenceSegment

        return ReferenceSegment.__repr__(self)  # the same text: it reads only the fields


cdef inline bint _no_sack(Segment seg) except -1:
    """``not seg.sack``, without a call for the decoder's shared empty tuple (~1 % of a
    run: the steady path, the full path's ACK and the duplicate ring each asked)."""
    sack = seg.sack
    if sack is _EMPTY:
        return True
    return not sack


cdef inline object _seg_frame(Segment seg):
    """``seg.frame`` (the property's value, without the attribute lookup): one object
    for all the reads of a segment's frame number (the full path makes several)."""
    if seg.frame_o is not None:
        return seg.frame_o
    if seg.frame_box is None:
        seg.frame_box = seg.frame_c
    return seg.frame_box


cdef inline object _seg_ts(Segment seg):
    """``seg.ts_ns`` (the property's value, without the attribute lookup): one object for
    all the reads of a segment's time."""
    if seg.ts_o is not None:
        return seg.ts_o
    if seg.ts_box is None:
        seg.ts_box = seg.ts_c
    return seg.ts_box


# What the decoding functions return for a segment of another ``--jobs`` worker's
# connection: decoded as far as the reference would, never built (see ``_tcp``).
cdef Segment _FOREIGN = Segment.__new__(Segment)
# The slot and header length (``data_start``) of the last segment ``_tcp`` found to be
# another worker's: what the calling process copies into that worker's ring (``Rings``).
cdef long long _foreign_slot = 0
cdef Py_ssize_t _foreign_head = 0

# The segment :func:`_tcp` built last. When nothing but this variable holds it any more
# (the packet is done with: no connection kept it for duplicate detection, no caller holds
# it), the next segment is written into it instead of a new one: one allocation and one
# deallocation fewer per packet (~220 instructions; issue 16 wants no Python object per
# packet). Observably the same as freeing it and allocating the next at the same address:
# every field is written again, and an object only this variable references cannot be
# seen by anyone else. The pcap loops drop their own reference once a segment is routed.
cdef Segment _spare = Segment.__new__(Segment)

cdef extern from *:
    """
    #define tcptrace_refcnt(o) Py_REFCNT((PyObject*)(o))
    """
    # ``Py_REFCNT`` of an object Cython passes as is: given a module variable, Cython's own
    # ``Py_REFCNT`` takes a counted reference to it first, and so never sees 1.
    Py_ssize_t tcptrace_refcnt(void* o) noexcept nogil


# ---------------------------------------------------------------- decoding (decode.py)
cdef inline bint _is_vlan(uint32_t et) noexcept nogil:
    # decode.ETH_VLAN_TAGS: 802.1Q, 802.1ad, old QinQ.
    return et == 0x8100 or et == 0x88A8 or et == 0x9100 or et == 0x9200


cdef enum:
    ADDR_CACHE_SLOTS = 4096  # a power of two (the slot is a mask); 4096 x 8 bytes of pointers
cdef list _addr_cache = [b""] * ADDR_CACHE_SLOTS


cdef inline bint _same_bytes(const void* x, const void* y, Py_ssize_t n) noexcept nogil:
    """``memcmp(x, y, n) == 0``, an address's 4 or 16 bytes compared as words (a call to
    ``memcmp`` with a size the compiler cannot see costs more than the rest of
    :func:`_addr`)."""
    cdef uint32_t a4, b4
    cdef uint64_t a8, b8, c8, d8
    if n == 4:
        memcpy(&a4, x, 4)
        memcpy(&b4, y, 4)
        return a4 == b4
    if n == 16:
        memcpy(&a8, x, 8)
        memcpy(&b8, y, 8)
        memcpy(&c8, <const char*>x + 8, 8)
        memcpy(&d8, <const char*>y + 8, 8)
        return a8 == b8 and c8 == d8
    return memcmp(x, y, n) == 0


cdef inline object _addr(const uint8_t* a, Py_ssize_t alen):
    """The address ``a[:alen]`` as a bytes object, shared with the last segment whose
    address fell in the same slot of a small direct-mapped cache.

    Why: every segment carries its two addresses, and the flow table finds its connection
    by a tuple holding them. A fresh bytes object per address per packet costs two
    allocations and, at the lookup, a SipHash of each (a new object has no cached hash);
    a shared one is hashed once and compared by identity, and the segments a connection
    keeps (duplicate detection) share one copy. Values are the same either way."""
    cdef uint32_t h = (<uint32_t>a[alen - 1] | (<uint32_t>a[alen - 2] << 8)
                       | (<uint32_t>a[alen - 3] << 16)) ^ (<uint32_t>a[0] << 4)
    cdef Py_ssize_t slot = (h ^ (h >> 12)) & (ADDR_CACHE_SLOTS - 1)
    cdef object cached = <object>PyList_GET_ITEM(_addr_cache, slot)
    if PyBytes_GET_SIZE(cached) == alen and \
            _same_bytes(PyBytes_AS_STRING(cached), a, alen):
        return cached
    fresh = PyBytes_FromStringAndSize(<const char*>a, alen)
    _addr_cache[slot] = fresh
    return fresh


cdef Segment _tcp(const uint8_t* d, Py_ssize_t n, Py_ssize_t l4, Py_ssize_t ip_end,
                  const uint8_t* src, const uint8_t* dst, Py_ssize_t alen, int ip_id,
                  int ttl, long long frame, object ts, long long ts_c, int ecn, long long lo,
                  long long hi):
    """Twin of ``Decoder._tcp`` for a complete fixed header (None: the reference decides).

    With ``hi > 0`` (a ``--jobs`` worker's slot range ``[lo, hi)``), a segment the reference
    would decode and whose connection hashes outside the range is not built: ``_FOREIGN``
    says so (its options are still checked: a malformed one goes to the reference, which
    counts it, as for any segment). The frame's time is ``ts``, or the C integer ``ts_c``
    when ``ts`` is None: the pcap loop boxes it only for a segment it builds."""
    cdef Py_ssize_t cap_end = ip_end if ip_end < n else n
    if l4 + 20 > cap_end:
        return None  # _tcp_cut: a header cut inside its fixed 20 bytes
    cdef const uint8_t* t = d + l4
    cdef uint32_t off_flags = be16(t + 12)
    cdef Py_ssize_t thl = (off_flags >> 12) << 2
    if thl < 20:
        return None  # malformed
    cdef Py_ssize_t payload_len = ip_end - l4 - thl
    if payload_len < 0:
        return None  # malformed
    cdef Py_ssize_t data_start = l4 + thl
    if data_start > cap_end:
        return None  # header cut inside its options: the reference keeps what it can
    cdef unsigned long long x
    cdef long long slot
    if hi:
        # flowtable.slot_of from the header bytes (FlowTableBase.on_segment's test)
        x = <unsigned long long>(be16(t) ^ be16(t + 2) ^ ((src[alen - 1] ^ dst[alen - 1]) << 16))
        slot = <long long>(((x * SHARD_MIX) >> 20) & (SHARD_SLOTS - 1))
        if slot < lo or slot >= hi:
            if thl == 20 or _options_ok(t + 20, thl - 20):
                global _foreign_slot, _foreign_head
                _foreign_slot = slot
                _foreign_head = data_start
                return _FOREIGN
            return None  # malformed option: the reference counts it
    global _spare
    cdef Segment seg
    if tcptrace_refcnt(<void*>_spare) == 1:
        seg = _spare
    else:
        seg = Segment.__new__(Segment)
        _spare = seg
    seg.frame_c = frame  # a count of frames read: far below 2**62
    if seg.frame_o is not None:
        seg.frame_o = None
    if seg.frame_box is not None:
        seg.frame_box = None
    if ts is None and -_C_TIME_LIMIT < ts_c < _C_TIME_LIMIT:
        seg.ts_c = ts_c
        if seg.ts_o is not None:
            seg.ts_o = None
    else:
        seg.ts_o = _split_int(ts_c if ts is None else ts, &seg.ts_c)
    if seg.ts_box is not None:
        seg.ts_box = None
    seg.src = _addr(src, alen)
    seg.dst = _addr(dst, alen)
    seg.sport = be16(t)
    seg.dport = be16(t + 2)
    seg.seq = be32(t + 4)
    seg.ack = be32(t + 8)
    seg.flags = off_flags & 0x1FF
    seg.window = be16(t + 14)
    seg.checksum = be16(t + 16)
    seg.ecn = ecn
    seg.urgent = be16(t + 18)
    seg.payload_len = payload_len
    seg.captured_payload = cap_end - data_start
    seg.ip_id = ip_id
    seg.ttl = ttl
    seg.header_truncated = False
    seg.mss = -1
    seg.wscale = -1
    seg.sack_permitted = False
    seg.sack = _EMPTY
    seg.tsval = -1
    seg.tsecr = -1
    seg.other_options = _EMPTY
    if thl == 20:
        return seg
    cdef const uint8_t* o = t + 20
    if thl == 32 and o[0] == 1 and o[1] == 1 and o[2] == 8 and o[3] == 10:
        seg.tsval = be32(o + 4)
        seg.tsecr = be32(o + 8)
        return seg
    if not _options(seg, o, thl - 20):
        return None  # malformed option: the reference counts it and keeps what it parsed
    return seg


cdef bint _options_ok(const uint8_t* o, Py_ssize_t n) noexcept nogil:
    """False where :func:`_options` would find a malformed option (nothing kept)."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t olen
    cdef uint8_t kind
    while i < n:
        kind = o[i]
        if kind == 0:
            return True
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return False
        olen = o[i + 1]
        if olen < 2 or i + olen > n:
            return False
        i += olen
    return True


cdef bint _options(Segment seg, const uint8_t* o, Py_ssize_t n) except -1:
    """Twin of ``decode.parse_tcp_options``; False on a malformed option (the caller hands
    the frame to the reference, which counts ``malformed_tcp_option``)."""
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t olen, j
    cdef uint8_t kind
    cdef list other = None
    while i < n:
        kind = o[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            return False
        olen = o[i + 1]
        if olen < 2 or i + olen > n:
            return False
        if kind == 8 and olen == 10:
            seg.tsval = be32(o + i + 2)
            seg.tsecr = be32(o + i + 6)
        elif kind == 2 and olen == 4:
            seg.mss = be16(o + i + 2)
        elif kind == 3 and olen == 3:
            seg.wscale = o[i + 2]
        elif kind == 4 and olen == 2:
            seg.sack_permitted = True
        elif kind == 5 and (olen - 2) % 8 == 0:
            blocks = []
            j = i + 2
            while j < i + olen:
                blocks.append((be32(o + j), be32(o + j + 4)))
                j += 8
            seg.sack = tuple(blocks)
        else:
            if other is None:
                other = []
            other.append((kind, PyBytes_FromStringAndSize(<const char*>(o + i + 2), olen - 2)))
        i += olen
    if other is not None:
        seg.other_options = tuple(other)
    return True


cdef Segment _ipv4(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, long long frame, object ts,
                   long long ts_c, long long lo, long long hi):
    """Twin of ``Decoder._ipv4`` for an unfragmented IPv4 header carrying TCP."""
    if off + 20 > n:
        return None
    cdef const uint8_t* h = d + off
    cdef uint8_t b0 = h[0]
    cdef Py_ssize_t ihl = (b0 & 0x0F) << 2
    if b0 >> 4 != 4 or ihl < 20:
        return None
    cdef Py_ssize_t total_len = be16(h + 2)
    if be16(h + 6) & 0x1FFF:
        return None  # non-first fragment
    if total_len == 0 or total_len < ihl:
        return None  # TSO length 0 (a note) or malformed: the reference says which
    if h[9] != 6:
        return None  # not TCP: tunnels, ICMP errors and skips are the reference's
    return _tcp(d, n, off + ihl, off + total_len, h + 12, h + 16, 4, <int>be16(h + 4),
                h[8], frame, ts, ts_c, h[1] & 3, lo, hi)


cdef Segment _ipv6(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, long long frame, object ts,
                   long long ts_c, long long lo, long long hi):
    """Twin of ``Decoder._ipv6`` for an IPv6 header carrying TCP directly."""
    if off + 40 > n:
        return None
    cdef const uint8_t* h = d + off
    if be32(h) >> 28 != 6 or h[6] != 6:
        return None  # malformed, or extension headers / another protocol
    cdef Py_ssize_t plen = be16(h + 4)
    cdef Py_ssize_t ip_end = off + 40 + plen if plen else n
    cdef Segment seg = _tcp(d, n, off + 40, ip_end, h + 8, h + 24, 16, -1, h[7], frame, ts,
                            ts_c, (be32(h) >> 20) & 3, lo, hi)
    if plen == 0 and seg is _FOREIGN:
        # Payload length 0 (TSO, a jumbogram): the frame's size is the segment's length,
        # so another worker's ring gets the whole frame, not the headers (``Rings``).
        global _foreign_head
        _foreign_head = n
    return seg


cdef Segment _ip_by_version(const uint8_t* d, Py_ssize_t n, Py_ssize_t off, long long frame,
                            object ts, long long ts_c, long long lo, long long hi):
    if off >= n:
        return None
    cdef uint8_t version = d[off] >> 4
    if version == 4:
        return _ipv4(d, n, off, frame, ts, ts_c, lo, hi)
    if version == 6:
        return _ipv6(d, n, off, frame, ts, ts_c, lo, hi)
    return None


cdef Segment decode_frame(const uint8_t* d, Py_ssize_t n, int linktype, long long frame,
                          object ts, long long ts_c=0, long long lo=0, long long hi=0):
    """Twin of ``Decoder.decode`` for the link types and headers named in the module
    docstring; None hands the frame to the reference decoder (nothing counted here).
    ``_FOREIGN``: a segment of a connection outside the slot range ``[lo, hi)`` (see
    :func:`_tcp`; ``hi`` 0: none)."""
    cdef Py_ssize_t off
    cdef uint32_t et, family
    if linktype == 1:  # Ethernet: type at 12, IP at 14
        if n < 14:
            return None
        et = be16(d + 12)
        off = 14
    elif linktype == 113:  # Linux cooked v1: protocol at 14, IP at 16
        if n < 16:
            return None
        et = be16(d + 14)
        off = 16
    elif linktype == 276:  # Linux cooked v2: protocol at 0, IP at 20
        if n < 20:
            return None
        et = be16(d)
        off = 20
    elif linktype == 101 or linktype == 12 or linktype == 14:  # raw IP
        return _ip_by_version(d, n, 0, frame, ts, ts_c, lo, hi)
    elif linktype == 228:
        return _ipv4(d, n, 0, frame, ts, ts_c, lo, hi)
    elif linktype == 229:
        return _ipv6(d, n, 0, frame, ts, ts_c, lo, hi)
    elif linktype == 0 or linktype == 108:  # BSD loopback: host-order address family
        if n < 4:
            return None
        family = le32(d)
        if family > 0xFFFF:
            family = be32(d)
        if family == 2:
            return _ipv4(d, n, 4, frame, ts, ts_c, lo, hi)
        if family == 10 or family == 24 or family == 28 or family == 30:
            return _ipv6(d, n, 4, frame, ts, ts_c, lo, hi)
        return None
    else:
        return None
    # Decoder._ether: VLAN/QinQ tags, then IPv4 or IPv6.
    while _is_vlan(et):
        if off + 4 > n:
            return None
        et = be16(d + off + 2)
        off += 4
    if et == 0x0800:
        return _ipv4(d, n, off, frame, ts, ts_c, lo, hi)
    if et == 0x86DD:
        return _ipv6(d, n, off, frame, ts, ts_c, lo, hi)
    return None


cdef class Decoder:
    """Twin of ``decode.Decoder``: decodes what the compiled path knows and hands every
    other frame to the reference decoder it wraps (``.reference``), which counts skips and
    keeps ICMP errors (``icmp_errors`` is the reference's list)."""

    cdef public object reference
    cdef public object diag
    cdef public object icmp_errors

    def __init__(self, reference):
        self.reference = reference
        self.diag = reference.diag
        self.icmp_errors = reference.icmp_errors

    def decode(self, int linktype, bytes data, frame_no, ts_ns, wire_len):
        """Decode one frame; None when skipped (reason counted by the reference)."""
        cdef Segment seg = decode_frame(<const uint8_t*>PyBytes_AS_STRING(data),
                                        PyBytes_GET_SIZE(data), linktype, frame_no, ts_ns)
        if seg is None:
            return self.reference.decode(linktype, data, frame_no, ts_ns, wire_len)
        self.diag.tcp_segments += 1
        return seg


# ---------------------------------------------------------------- pcap (capture/pcap.py)
cdef class FlowTableBase  # defined with the flow table below
cdef class _JsonOut  # defined with FlowRecord below
cdef class Rings  # defined with the pcap loop below


@cython.final
cdef class Router:
    """What ``engine.Engine.run`` does with each segment, done inside the compiled pcap loop
    so that a segment costs no generator step and no Python loop iteration: keep the latest
    segment time and hand the segment to the flow table. The loop yields (``None``) only
    when the engine has something to do: connections in ``finished``, or ICMP errors the
    reference decoder kept (which must reach their connections before the next segment).

    In a ``--jobs`` worker (the table's ``slot_hi > 0``, ``parallel.shard_items``) the loop
    also yields when the table allocated flow ids or deferred old incarnations (the worker
    reports both at once), and the segments of other workers' connections are never built:
    they only advance the table's packet clock and sweep (:meth:`FlowTableBase._tick`), as
    ``on_segment`` does before its slot test. ``frame`` is the frame number of the segment
    last routed (the worker's sort keys)."""

    cdef FlowTableBase table
    cdef list finished
    cdef list icmp
    cdef list allocated
    cdef list deferred
    cdef long long _last_c
    cdef object _last_obj
    cdef public long long frame
    cdef public Rings rings
    """In a ``--jobs`` run's calling process: the other workers' rings, which the pcap loop
    fills as it reads (:class:`Rings`); else None."""
    cdef readonly long long slot_lo
    cdef readonly long long slot_hi
    cdef readonly bint direct
    """The table's ``on_segment`` is the compiled one: called without the per-call lookup
    of an override (~180 instructions a segment: the class is a Python subclass, so the
    ``cpdef`` dispatch asks the instance for the attribute each time). False when the
    class or the instance (a test counting segments) replaces it at the Router's start."""

    def __init__(self, FlowTableBase table, list finished, list icmp):
        self.table = table
        self.finished = finished
        self.icmp = icmp
        own = getattr(table, "__dict__", None)
        self.direct = getattr(type(table), "on_segment", None) is \
            (<object>FlowTableBase).__dict__["on_segment"] \
            and (own is None or "on_segment" not in own)
        self._last_c = -1
        self._last_obj = -1
        self.frame = 0
        self.slot_lo = table.slot_lo
        self.slot_hi = table.slot_hi
        if self.slot_hi:
            self.allocated = (<object>table).allocated
            self.deferred = (<object>table)._deferred

    cdef inline bint _pending(self) noexcept:
        if PyList_GET_SIZE(self.finished) > 0:
            return True
        return self.allocated is not None and (PyList_GET_SIZE(self.allocated) > 0
                                               or PyList_GET_SIZE(self.deferred) > 0)

    @property
    def last_ts(self):
        """The latest segment time routed (-1: none)."""
        return self._last_obj if self._last_obj > self._last_c else self._last_c

    cdef inline bint route(self, Segment seg, object ts, long long frame) except -1:
        if ts > self._last_obj:
            self._last_obj = ts
        self.frame = frame
        if self.direct:
            FlowTableBase.on_segment(self.table, seg, self.finished)
        else:
            self.table.on_segment(seg, self.finished)
        return self._pending()

    cdef inline bint route_c(self, Segment seg, long long ts, long long frame) except -1:
        """:meth:`route` for a time the pcap loop holds as a C integer."""
        if ts > self._last_c:
            self._last_c = ts
        self.frame = frame
        if self.direct:
            FlowTableBase.on_segment(self.table, seg, self.finished)
        else:
            self.table.on_segment(seg, self.finished)
        return self._pending()

    cdef inline bint foreign_c(self, long long ts, long long frame) except -1:
        """:meth:`foreign` for a time the pcap loop holds as a C integer: the table's clock
        test without boxing the time (``_tick_time`` and ``_tick_c`` are final and inline)."""
        if ts > self._last_c:
            self._last_c = ts
        self.frame = frame
        self.table._tick_time(ts, None, self.finished)
        return self._pending()

    cdef inline bint foreign(self, object ts, long long frame) except -1:
        """Another worker's segment: the clock and sweep only (a time the pcapng loop holds
        as an object; the pcap loop's C times take :meth:`foreign_c`)."""
        if ts > self._last_obj:
            self._last_obj = ts
        self.frame = frame
        self.table._tick(ts, self.finished)
        return self._pending()


# How far a mapped capture's reader gets past the pages it last dropped before it drops
# them (``read_pcap_segments``): about what a mapping adds to the resident set.
cdef Py_ssize_t MAP_DROP_BYTES = 1 << 20
# ``madvise`` takes page-aligned ranges: a multiple of every page size in use (4, 16, 64 KiB).
cdef Py_ssize_t MAP_PAGE_BYTES = 1 << 16


# ---------------------------------------------------------------- --jobs rings
cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define tcptrace_load_acquire(p) __atomic_load_n((p), __ATOMIC_ACQUIRE)
    #define tcptrace_store_release(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)
    #else
    #define tcptrace_load_acquire(p) (*(volatile long long *)(p))
    #define tcptrace_store_release(p, v) (*(volatile long long *)(p) = (v))
    #endif
    """
    long long load_acquire "tcptrace_load_acquire"(long long* p) noexcept nogil
    void store_release "tcptrace_store_release"(long long* p, long long v) noexcept nogil

# An entry of a ring: a header of six 64-bit words (frame number, time, kind and flags
# with the data length, captured and wire lengths, the calling process's table clock
# before the frame, the frame of its last routed segment), then its data, padded to 8
# bytes. Flags: 256 the clock is valid (a C integer), 512 a clock jump is pending.
cdef enum:
    RING_HEADER = 48
    RING_CONTROL = 128  # a ring's write position (offset 0) and read position (offset 64)
    RING_START = 1  # the capture's link type (in ``caplen``)
    RING_TICK = 2  # a TCP segment of another worker's connection: the clock only
    RING_HEAD = 3  # a segment of the ring's worker: the frame's headers (its ``data_start``)
    RING_FRAME = 4  # a frame the compiled decoder leaves to the reference: all of it
    RING_WRAP = 5  # the rest of the ring is unused: the next entry is at its start
    RING_END = 6  # the end of the capture (its time, ``engine.end_ns``, in ``ts``)

RING_WAIT = object()
"""What :meth:`Rings.segments` yields when its ring has been empty for a while (the
worker then sends what it has: ``parallel.shard_items``)."""


cdef inline Py_ssize_t _ring_entry_bytes(Py_ssize_t length) noexcept nogil:
    return RING_HEADER + ((length + 7) & ~7)


@cython.final
cdef class Rings:
    """The rings a ``--jobs`` run's calling process fills while it reads the capture, one
    per other worker, in memory shared with the workers (an anonymous mapping made before
    the fork). Why: every worker read and decoded every frame of the capture (about 0.45 s
    of CPU time on 2m.pcap, the third of a worker's own analysis: page faults for the whole
    file, cache misses on every frame header). The calling process reads it anyway; it now
    writes each worker what it needs, in capture order: the headers of the worker's own
    segments (the TCP header ends the copy: no payload), every frame the compiled decoder
    leaves to the reference (ICMP errors, fragments, other protocols), whole, which the
    worker's reference decoder reads as it read the file (same state, same segments), and
    a tick (frame number and time) for another worker's segment where the worker must
    replay it: where it swept the tables (:meth:`needs_tick`), and where the calling
    process hands items over (a worker's watermark then reaches that frame). Every entry
    carries the calling process's table clock before its frame (:meth:`before`), which is
    every table's: all see the same times, so a worker sets it instead of replaying the
    ~99 % of other segments that change nothing else (2m.pcap). See ``parallel.py``.

    One producer and one consumer per ring: the writer publishes its position once per
    chunk it reads and before it hands items over (release store), the reader its own once
    per 64 KiB it consumes. A full
    ring makes the writer call :attr:`waiter` (the calling process reads its workers' pipes
    meanwhile, so a worker blocked on its pipe cannot block the ring); an empty one makes
    the reader sleep 50 us at a time, with the GIL released (the worker's sender thread
    runs), and yield :data:`RING_WAIT` after 1 ms."""

    cdef object _map
    cdef Py_buffer _buf
    cdef bint _held
    cdef char* base
    cdef readonly Py_ssize_t ring_bytes
    cdef readonly int count
    cdef long long* _wpos
    cdef long long* _rseen  # each reader's position as the writer last read it
    cdef Py_ssize_t _mask
    cdef uint8_t _owner[4096]
    cdef public object waiter
    """Called (no arguments) while a ring is full, until its reader made room."""
    cdef FlowTableBase table
    cdef bint _valid0
    cdef bint _jump0
    cdef long long _clock0
    cdef long long _sweep0
    cdef long long _rframe0
    cdef readonly long long end_ns
    cdef readonly object last_ts_ns
    cdef readonly long long sleeps
    """Times a reader slept (50 us each) on an empty ring, and a writer called
    :attr:`waiter` on a full one: how long either waited for the other."""

    def __cinit__(self):
        self._held = False
        self._wpos = NULL

    def __init__(self, object mapping, int count, Py_ssize_t ring_bytes, owners):
        """Rings for ``count`` workers (1..count) in ``mapping`` (an ``mmap`` of at least
        :meth:`mapping_bytes` bytes, zero-filled); ``owners[slot]`` is the worker of
        each of the 4096 slots (0: the calling process)."""
        if ring_bytes & (ring_bytes - 1) or ring_bytes < 4 * (RING_HEADER + (1 << 18)):
            raise ValueError("ring_bytes: a power of two holding four of the largest frames")
        if not 1 <= count <= 255:
            raise ValueError("count: 1 to 255 rings (a slot's owner is a byte)")
        if len(owners) != <Py_ssize_t>SHARD_SLOTS or not all(0 <= o <= count for o in owners):
            raise ValueError("owners: one worker (0 to count) per slot")
        PyObject_GetBuffer(mapping, &self._buf, PyBUF_SIMPLE)
        self._held = True
        if self._buf.len < Rings.mapping_bytes(count, ring_bytes):
            raise ValueError("mapping too small for the rings")
        self._map = mapping
        self.base = <char*>self._buf.buf
        self.count = count
        self.ring_bytes = ring_bytes
        self._mask = ring_bytes - 1
        self._wpos = <long long*>PyMem_Calloc(count, sizeof(long long))
        self._rseen = <long long*>PyMem_Calloc(count, sizeof(long long))
        if self._wpos == NULL or self._rseen == NULL:
            raise MemoryError()
        cdef Py_ssize_t k
        for k in range(<Py_ssize_t>SHARD_SLOTS):
            self._owner[k] = <uint8_t>owners[k]
        self.waiter = None
        self.end_ns = 0
        self.sleeps = 0
        self.last_ts_ns = None

    @staticmethod
    def mapping_bytes(int count, Py_ssize_t ring_bytes):
        """The size of the mapping ``count`` rings of ``ring_bytes`` need."""
        return count * (RING_CONTROL + ring_bytes)

    def __dealloc__(self):
        if self._held:
            PyBuffer_Release(&self._buf)
        PyMem_Free(self._wpos)
        PyMem_Free(self._rseen)

    cdef inline char* _control(self, int k) noexcept:
        return self.base + (k - 1) * (RING_CONTROL + self.ring_bytes)

    # ------------------------------------------------------------ the writer's side
    cdef void publish(self) noexcept:
        """Let every reader see what was written so far."""
        cdef int k
        for k in range(1, self.count + 1):
            store_release(<long long*>self._control(k), self._wpos[k - 1])

    cdef inline char* _reserve(self, int k, Py_ssize_t length) except NULL:
        """Room for an entry of ``length`` data bytes in ring ``k``: its header's address
        (written by the caller, then :meth:`_commit`). The reader's position is read from
        the shared line only when the last one read leaves too little room."""
        cdef Py_ssize_t need = _ring_entry_bytes(length)
        cdef long long w = self._wpos[k - 1]
        cdef Py_ssize_t off = w & self._mask
        if self.ring_bytes - off >= need and \
                self.ring_bytes - (w - self._rseen[k - 1]) >= need:
            return self._control(k) + RING_CONTROL + off
        return self._reserve_slow(k, need)

    cdef char* _reserve_slow(self, int k, Py_ssize_t need) except NULL:
        cdef char* ctl = self._control(k)
        cdef Py_ssize_t size = self.ring_bytes
        cdef long long w = self._wpos[k - 1]
        cdef Py_ssize_t off = w & self._mask
        cdef Py_ssize_t tail = size - off
        cdef Py_ssize_t total = need + (tail if tail < need else 0)
        while True:
            self._rseen[k - 1] = load_acquire(<long long*>(ctl + 64))
            if size - (w - self._rseen[k - 1]) >= total:
                break
            self.publish()
            if self.waiter is None:
                raise RuntimeError("a --jobs ring is full and nothing reads it")
            self.sleeps += 1
            self.waiter()
        if tail < need:
            if tail >= RING_HEADER:
                (<int32_t*>(ctl + RING_CONTROL + off + 16))[0] = RING_WRAP
            w += tail
            self._wpos[k - 1] = w
            off = 0
        return ctl + RING_CONTROL + off

    cdef inline void before(self, long long rframe) noexcept:
        """Note the calling process's table clock before a frame (and the frame of the
        last segment it routed): every entry for this frame carries them, so a worker's
        table has the clock the frame found without seeing every other segment (see
        :meth:`needs_tick`)."""
        cdef FlowTableBase t = self.table
        self._valid0 = t._clock_in_c and t._sweep_in_c
        self._clock0 = t._clock_c
        self._jump0 = t._jump_pending
        self._sweep0 = t._sweep_c
        self._rframe0 = rframe

    cdef inline bint needs_tick(self) noexcept:
        """Whether the other workers must replay the clock of the segment just routed:
        only when it swept the table (every table sweeps at the same segments: the clock
        is the same sequence of times in all) or the clock left the C range (then every
        segment is replayed). Otherwise the segment changed nothing but the clock, which
        the worker's next entry sets."""
        cdef FlowTableBase t = self.table
        return not (self._valid0 and t._clock_in_c and t._sweep_in_c) \
            or t._sweep_c != self._sweep0

    cdef inline void _commit(self, int k, char* e, long long frame, long long ts, int kind,
                             Py_ssize_t length, long long caplen, long long wire_len) noexcept:
        (<long long*>e)[0] = frame
        (<long long*>e)[1] = ts
        (<int32_t*>(e + 16))[0] = kind | (self._valid0 << 8) | (self._jump0 << 9)
        (<int32_t*>(e + 20))[0] = <int32_t>length
        (<int32_t*>(e + 24))[0] = <int32_t>caplen
        (<int32_t*>(e + 28))[0] = <int32_t>wire_len
        (<long long*>e)[4] = self._clock0
        (<long long*>e)[5] = self._rframe0
        self._wpos[k - 1] += _ring_entry_bytes(length)

    cdef int put(self, int k, int kind, long long frame, long long ts, const uint8_t* data,
                 Py_ssize_t length, long long caplen, long long wire_len) except -1:
        cdef char* e = self._reserve(k, length)
        if length:
            memcpy(e + RING_HEADER, data, length)
        self._commit(k, e, frame, ts, kind, length, caplen, wire_len)
        return 0

    cdef int tick_all(self, long long frame, long long ts, int skip) except -1:
        """A tick in every ring but ``skip``'s (0: in all)."""
        cdef int k
        cdef char* e
        for k in range(1, self.count + 1):
            if k != skip:
                e = self._reserve(k, 0)
                self._commit(k, e, frame, ts, RING_TICK, 0, 0, 0)
        return 0

    cdef int own(self, long long frame, long long ts, bint pending) except -1:
        """The calling process routed a segment of its own: a tick for the workers when
        it swept (:meth:`needs_tick`), or when the calling process is about to hand over
        items (the workers' watermarks then reach this frame)."""
        if pending or self.needs_tick():
            self.tick_all(frame, ts, 0)
        return 0

    cdef int frame_all(self, long long frame, long long ts, const uint8_t* data,
                       Py_ssize_t caplen, long long wire_len) except -1:
        cdef int k
        for k in range(1, self.count + 1):
            self.put(k, RING_FRAME, frame, ts, data, caplen, caplen, wire_len)
        return 0

    cdef int foreign(self, long long frame, long long ts, const uint8_t* data,
                     Py_ssize_t caplen, long long slot, Py_ssize_t head,
                     bint pending) except -1:
        """A segment ``_tcp`` found to be another worker's (its ``slot`` and header
        length): its headers to that worker, a tick to the others as in :meth:`own`."""
        cdef int owner = self._owner[slot]
        self.put(owner, RING_HEAD, frame, ts, data, head, caplen, 0)
        if self.count > 1 and (pending or self.needs_tick()):
            self.tick_all(frame, ts, owner)
        return 0

    def start(self, FlowTableBase table, int linktype):
        """Tell the workers the capture's link type (before its first frame); ``table``
        is the calling process's, whose clock the entries carry."""
        self.table = table
        self.before(0)
        cdef int k
        for k in range(1, self.count + 1):
            self.put(k, RING_START, 0, 0, NULL, 0, linktype, 0)
        self.publish()

    def end(self, long long end_ns, last_ts_ns):
        """The end of the capture: the time every table drains at, and the latest frame
        time read (``Diagnostics.last_ts_ns``, None when no frame had one), which the
        detectors take for the end of the connections still open."""
        cdef int k
        cdef long long last = 0 if last_ts_ns is None else last_ts_ns
        self.before(0)
        for k in range(1, self.count + 1):
            self.put(k, RING_END, last, end_ns, NULL, 0, last_ts_ns is not None, 0)
        self.publish()

    # ------------------------------------------------------------ the reader's side
    def segments(self, int k, decoder, Router router):
        """Worker ``k``'s segments, as the pcap loop would route them (see
        :func:`read_pcap_segments`): yields None when the engine has work, and
        :data:`RING_WAIT` when the ring has stayed empty for 1 ms. Ends at the capture's
        end (:attr:`end_ns` then holds its time)."""
        reference = decoder.reference if isinstance(decoder, Decoder) else decoder
        ref_decode = reference.decode
        cdef char* ctl = self._control(k)
        cdef const char* data = ctl + RING_CONTROL
        cdef Py_ssize_t size = self.ring_bytes
        cdef Py_ssize_t mask = self._mask
        cdef long long r = 0, w = 0, published = 0
        cdef Py_ssize_t off, length
        cdef const char* e
        cdef int kind, word, linktype = -1, idle = 0
        cdef long long frame, ts, caplen, wire_len
        cdef long long lo = router.slot_lo, hi = router.slot_hi
        cdef Segment seg
        cdef FlowTableBase table = router.table
        from os import getppid
        from time import sleep
        ppid = getppid()
        while True:
            w = load_acquire(<long long*>ctl)
            if r == w:
                if r != published:
                    store_release(<long long*>(ctl + 64), r)
                    published = r
                idle += 1
                if idle == 20:
                    yield RING_WAIT
                if idle % 20000 == 0 and getppid() != ppid:
                    raise RuntimeError("the --jobs calling process is gone")
                self.sleeps += 1
                sleep(0.00005)  # the GIL released: the worker's sender thread runs
                continue
            idle = 0
            while r != w:
                off = r & mask
                if size - off < RING_HEADER:
                    r += size - off
                    continue
                e = data + off
                word = (<const int32_t*>(e + 16))[0]
                kind = word & 0xFF
                if kind == RING_WRAP:
                    r += size - off
                    continue
                if word & 256:  # the clock this frame found (see Rings.before)
                    table._clock_c = (<const long long*>e)[4]
                    table._jump_pending = (word & 512) != 0
                frame = (<const long long*>e)[0]
                ts = (<const long long*>e)[1]
                length = (<const int32_t*>(e + 20))[0]
                caplen = (<const int32_t*>(e + 24))[0]
                wire_len = (<const int32_t*>(e + 28))[0]
                if length < 0 or length > size - off - RING_HEADER:
                    raise RuntimeError("a --jobs ring entry overruns its ring")
                r += _ring_entry_bytes(length)
                if kind == RING_TICK:
                    if router.foreign_c(ts, frame):
                        yield None
                elif kind == RING_HEAD:
                    seg = decode_frame(<const uint8_t*>(e + RING_HEADER), length, linktype,
                                       frame, None, ts, lo, hi)
                    if seg is None or seg is _FOREIGN:
                        raise RuntimeError("a --jobs ring entry does not decode as its writer's")
                    if length < caplen:
                        # decoded from the headers alone: the captured payload is the frame's
                        seg.captured_payload = min(seg.payload_len, caplen - length)
                    if router.route_c(seg, ts, frame):
                        seg = None
                        yield None
                    seg = None
                elif kind == RING_FRAME:
                    router.frame = (<const long long*>e)[5]
                    ref_seg = ref_decode(linktype, PyBytes_FromStringAndSize(
                        e + RING_HEADER, length), frame, ts, wire_len)
                    if ref_seg is not None:
                        if router.route_c(ref_seg, ts, frame):
                            yield None
                    elif router.icmp:
                        yield None
                elif kind == RING_START:
                    linktype = <int>caplen
                elif kind == RING_END:
                    store_release(<long long*>(ctl + 64), r)
                    self.end_ns = ts
                    self.last_ts_ns = frame if caplen else None
                    return
                else:
                    raise RuntimeError(f"unknown --jobs ring entry kind {kind}")
                if r - published >= 65536:
                    store_release(<long long*>(ctl + 64), r)
                    published = r


def read_pcap_segments(stream, bytes head, str display, diag, bint strict, decoder,
                       Router router=None):
    """Twin of ``capture.pcap.read_pcap_segments``: the TCP segments of a classic pcap
    stream, with the reference's damage, timestamp and counting rules.

    With a ``router`` the segments go to the engine's flow table from here (see
    :class:`Router`) and the generator yields ``None`` when the engine has work to do."""
    from tcptrace_py.capture.common import (
        CHUNK_BYTES,
        MAX_RECORD_BYTES,
        damage,
        note_backwards,
        update_ts_range,
    )
    from tcptrace_py.capture.pcap import _SWAPPED, GLOBAL_HEADER_BYTES, parse_header

    reference = decoder.reference if isinstance(decoder, Decoder) else decoder
    ref_decode = reference.decode
    cdef bytes buf = head
    while len(buf) < GLOBAL_HEADER_BYTES:
        chunk = stream.read(CHUNK_BYTES)
        if not chunk:
            break
        buf += bytes(chunk)
    hdr = parse_header(buf, display)
    cdef bint little = hdr["_order"] == "<"
    cdef long long frac_ns = hdr["_frac_ns"]
    cdef int swap = hdr["_swap"]
    cdef int swapped = _SWAPPED
    cdef Py_ssize_t rec_bytes = hdr["record_header_bytes"]
    cdef int linktype = hdr["linktype"]
    cdef long long snaplen = hdr["snaplen"]
    cdef long long max_record = MAX_RECORD_BYTES
    cdef long long max_cap = min(snaplen, max_record) if snaplen > 0 else max_record
    cdef long long frac_limit = 1_000_000_000 // frac_ns
    cdef long long chunk_bytes = CHUNK_BYTES

    cdef Py_ssize_t pos = GLOBAL_HEADER_BYTES
    cdef long long base = 0
    cdef long long frame_no = 0
    cdef long long flushed = 0
    cdef long long tcp_segments = 0
    cdef long long last_ts = LLONG_MIN
    cdef long long min_ts = 0
    cdef bint have_min = False
    cdef bint backwards_warned = False
    cdef long long bad_frac = 0
    cdef Py_ssize_t n, start, end
    cdef long long sec, frac, caplen, wire_len, ts, tmp
    cdef const uint8_t* p
    cdef const uint8_t* r
    cdef Segment seg
    cdef long long lo = 0, hi = 0
    cdef Rings rings = None
    cdef bint pending
    if router is not None:
        lo = router.slot_lo
        hi = router.slot_hi
        rings = router.rings
        if rings is not None:
            rings.start(router.table, linktype)
    read = stream.read
    # Chunks after the first are read into one reused buffer when the stream can fill one
    # (``source._Prefixed.readinto``): the same chunks as ``read(CHUNK_BYTES)``, without a
    # fresh mebibyte (and its page faults) per chunk. ``arena`` holds the left-over bytes of
    # the previous chunk (less than a record header and the largest record) and then up to
    # one chunk.
    readinto = getattr(stream, "readinto", None)
    cdef bytearray arena = None
    cdef object view = None
    cdef Py_ssize_t rem, got
    # A capture file we opened is read from a mapping of it instead when the stream allows
    # (``source._Prefixed.mapped``): ``p`` is then the file's first byte, ``base`` 0, and
    # ``n`` a limit moved on a chunk at a time (after checking the file still holds the
    # mapping); the pages behind are dropped every MAP_DROP_BYTES. At the mapping's end, or
    # when the file shrank under it, the reader reads on with ``readinto`` from ``pos``.
    mapped_at = getattr(stream, "mapped", None)
    cdef object mapped = None  # the mapping while ``mapped_buf`` holds it
    cdef Py_buffer mapped_buf
    cdef Py_ssize_t map_len = 0, dropped = 0, cut
    dontneed = None
    n = PyBytes_GET_SIZE(buf)
    p = <const uint8_t*>PyBytes_AS_STRING(buf)
    try:
        while True:
            while pos + rec_bytes <= n:
                r = p + pos
                if little:
                    sec = le32(r)
                    frac = le32(r + 4)
                    caplen = le32(r + 8)
                    wire_len = le32(r + 12)
                else:
                    sec = be32(r)
                    frac = be32(r + 4)
                    caplen = be32(r + 8)
                    wire_len = be32(r + 12)
                if swap and (swap == swapped or caplen > wire_len):
                    tmp = caplen
                    caplen = wire_len
                    wire_len = tmp
                if caplen > max_cap:
                    limit = (f"the file's snaplen {snaplen}" if caplen <= max_record
                             else f"the {max_record}-byte limit")
                    damage(diag, display,
                           f"record length {caplen} exceeds {limit} "
                           f"(file damaged; {frame_no} frames read)",
                           offset=base + pos, frame=frame_no + 1, strict=strict,
                           code="bad_record_length")
                    return
                start = pos + rec_bytes
                end = start + caplen
                if end > n:
                    break
                # The next record's header and the frame's headers behind it, fetched while
                # this frame is decoded: from a mapping they come from memory, not from a
                # buffer the copy just warmed (a prefetch is a hint: never a fault, in range
                # or not).
                prefetch(p + end)
                prefetch(p + end + 64)
                prefetch(p + end + 16384)
                if frac >= frac_limit:
                    bad_frac += 1
                ts = sec * 1_000_000_000 + frac * frac_ns
                if ts < last_ts:
                    backwards_warned = note_backwards(diag, display, backwards_warned,
                                                      frame_no + 1, ts, last_ts)
                    if not have_min or ts < min_ts:
                        min_ts = ts
                        have_min = True
                else:
                    if not have_min:
                        min_ts = ts
                        have_min = True
                    last_ts = ts
                frame_no += 1
                pos = end
                # The time is boxed only for a segment that is built (not for another
                # worker's, nor for a frame the compiled decoder leaves to the reference).
                seg = decode_frame(p + start, caplen, linktype, frame_no, None, ts, lo, hi)
                if rings is not None:
                    # The table clock this frame finds, which every entry the other
                    # workers get for it carries (see Rings).
                    rings.before(router.frame)
                if seg is not None:
                    tcp_segments += 1
                    if router is None:
                        yield seg
                    elif seg is _FOREIGN:
                        pending = router.foreign_c(ts, frame_no)
                        if rings is not None:
                            rings.foreign(frame_no, ts, p + start, caplen, _foreign_slot,
                                          _foreign_head, pending)
                        if pending:
                            if rings is not None:
                                rings.publish()
                            yield None
                    else:
                        pending = router.route_c(seg, ts, frame_no)
                        if rings is not None:
                            rings.own(frame_no, ts, pending)
                        if pending:
                            seg = None
                            if rings is not None:
                                rings.publish()
                            yield None
                    seg = None  # the next segment may reuse it (``_spare``)
                    continue
                if rings is not None:
                    rings.frame_all(frame_no, ts, p + start, caplen, wire_len)
                ref_seg = ref_decode(linktype, PyBytes_FromStringAndSize(
                    <const char*>p + start, caplen), frame_no, ts, wire_len)
                if router is None:
                    if ref_seg is not None:
                        yield ref_seg
                elif ref_seg is not None:
                    if router.route_c(ref_seg, ts, frame_no):
                        if rings is not None:
                            rings.publish()
                        yield None
                elif router.icmp:
                    if rings is not None:
                        rings.publish()
                    yield None
            if rings is not None:
                rings.publish()
            if tcp_segments:
                diag.tcp_segments += tcp_segments
                tcp_segments = 0
            if frame_no != flushed:
                diag.frames += frame_no - flushed
                diag.link_types[linktype] += frame_no - flushed
                flushed = frame_no
                update_ts_range(diag, min_ts if have_min else None, last_ts)
            rem = n - pos
            if mapped is not None:
                if n < map_len and stream.still_mapped(map_len):
                    if dontneed is not None and pos - dropped >= MAP_DROP_BYTES:
                        cut = pos - pos % MAP_PAGE_BYTES
                        try:
                            mapped.madvise(dontneed, dropped, cut - dropped)
                        except OSError:
                            dontneed = None  # a file system that refuses: keep the pages
                        dropped = cut
                    n = min(n + chunk_bytes, map_len)
                    continue
                # Read on from ``pos`` (base is 0 while mapped): the file's next byte.
                PyBuffer_Release(&mapped_buf)
                mapped.close()
                mapped = None
                stream.seek(pos)
                base = pos
                pos = n = rem = 0
            elif mapped_at is not None and readinto is not None:
                whole = mapped_at(base + n)
                mapped_at = None  # asked once
                if whole is not None:
                    import mmap
                    dontneed = mmap.MADV_DONTNEED
                    PyObject_GetBuffer(whole, &mapped_buf, PyBUF_SIMPLE)
                    mapped = whole
                    map_len = mapped_buf.len
                    p = <const uint8_t*>mapped_buf.buf
                    pos += base
                    base = 0
                    n = min(pos + rem + chunk_bytes, map_len)
                    continue
            if readinto is not None:
                if arena is None:
                    arena = bytearray(chunk_bytes + rec_bytes + max_cap)
                    view = memoryview(arena)
                # The left-over bytes move to the front (regions may overlap: memmove).
                memmove(PyByteArray_AS_STRING(arena), p + pos, rem)
                got = readinto(view[rem:rem + chunk_bytes])
                p = <const uint8_t*>PyByteArray_AS_STRING(arena)
            else:
                chunk = read(chunk_bytes)
                got = len(chunk) if chunk else 0
                if got:
                    buf = buf[pos:] + bytes(chunk)
                    p = <const uint8_t*>PyBytes_AS_STRING(buf)
            if not got:
                if rem:
                    damage(diag, display,
                           f"file ends in the middle of a record ({rem} bytes left over; "
                           f"{frame_no} frames read)",
                           offset=base + pos, frame=frame_no + 1, strict=strict,
                           code="truncated_record")
                return
            n = rem + got
            base += pos
            pos = 0
    finally:
        if mapped is not None:
            PyBuffer_Release(&mapped_buf)
            mapped.close()
        if tcp_segments:
            diag.tcp_segments += tcp_segments
        if frame_no != flushed:
            diag.frames += frame_no - flushed
            diag.link_types[linktype] += frame_no - flushed
            update_ts_range(diag, min_ts if have_min else None, last_ts)
        if bad_frac:
            diag.notes["invalid_timestamp_fraction"] += bad_frac
            diag.warn(display, f"{bad_frac} record(s) have a timestamp fraction of 1 s or "
                      "more (kept, added as is)", code="invalid_timestamp")


# ================================================================ record rounding
cdef double EXACT_BELOW = 4503599627370496.0  # analysis.sequence._EXACT_BELOW (2**52)
cdef double ROUND_MARGIN = 2.3e-16  # analysis.sequence._MARGIN


cdef inline bint _round_k(double x, double scale, long long* k) noexcept:
    """The exact step of :func:`_round_d`: True, with ``k``, when ``round(x, digits)`` is
    the double ``k / scale`` (``x * scale`` in (0, 2**52) and not within the margin of a
    tie); False when _round_d decides otherwise."""
    cdef double y = x * scale
    cdef double f
    if 0.0 < y < EXACT_BELOW:
        k[0] = <long long>y
        f = y - <double>k[0]
        if fabs(f - 0.5) > y * ROUND_MARGIN:
            if f > 0.5:
                k[0] += 1
            return True
    return False


cdef inline object _round_d(double x, double scale, int digits):
    """Twin of ``analysis.sequence._round_scaled`` for a float (see ``round3`` there for why
    it gives ``round(x, digits)``'s bits): the same double steps (this module is built
    without fused multiply-add), on a C double, so record columns need no float object
    first."""
    cdef long long k
    if _round_k(x, scale, &k):
        return <double>k / scale
    if x * scale == 0.0:
        return x  # +-0.0, sign kept, as round() gives it (~2.7 k instructions there)
    return round(x, digits)


cdef inline object _round_scaled(object x, double scale, int digits):
    """Twin of ``analysis.sequence._round_scaled``: a float through :func:`_round_d`,
    anything else through the reference's Python steps."""
    if type(x) is float:
        return _round_d(x, scale, digits)
    iscale = int(scale)
    yo = x * iscale
    if 0.0 < yo < EXACT_BELOW:
        ko = int(yo)
        fo = yo - ko
        if abs(fo - 0.5) > yo * ROUND_MARGIN:
            return (ko + 1 if fo > 0.5 else ko) / iscale
    return round(x, digits)


def round3(x):
    """Twin of ``analysis.sequence.round3``: ``round(x, 3)``, bit for bit."""
    return _round_scaled(x, 1000.0, 3)


def round1(x):
    """Twin of ``analysis.sequence.round1``: ``round(x, 1)``, bit for bit."""
    return _round_scaled(x, 10.0, 1)


# ================================================================ the allocator
cdef extern from *:
    """
    #if defined(__GLIBC__)
    #include <malloc.h>
    static int tcptrace_keep_heap(int mmap_threshold, int trim_threshold) {
        return mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1
            && mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1;
    }
    #else
    static int tcptrace_keep_heap(int mmap_threshold, int trim_threshold) {
        (void)mmap_threshold; (void)trim_threshold;
        return 0;
    }
    #endif
    """
    int tcptrace_keep_heap(int mmap_threshold, int trim_threshold) nogil


def keep_heap(int mmap_threshold, int trim_threshold):
    """Ask glibc's malloc to serve blocks below ``mmap_threshold`` bytes from its heap and
    to keep up to ``trim_threshold`` free bytes there; False where that is not glibc.

    Why: by default a freed block of 128 KiB or more goes back to the kernel at once, so a
    reader cycling 1 MiB chunks (a decompressor's output, a pcapng buffer) page-faults its
    way through every byte of the capture again: 0.1-0.2 s of system time per 200 k
    packets (docs/benchmarks.md). Only the console entry point calls this: it is a
    process-wide setting, not a library's to make."""
    return tcptrace_keep_heap(mmap_threshold, trim_threshold) != 0


# ================================================================ the steady path
# Compiled bases of the per-connection classes. Each holds, as C fields, exactly the
# attributes the steady path reads or writes; ``implementation.twin`` builds the class the
# engine uses as a Python subclass of the base with the reference class's methods and its
# remaining slots, so everything else (the full path, detectors, reports) runs the
# reference's code unchanged on the same objects.

TWIN_INITS = frozenset({"DirectionStatsBase", "SenderStateBase", "EndpointBase",
                        "PeerSummaryBase", "SequenceAnalyzerBase", "ConnectionBase",
                        "RttEstimatorBase", "EndpointMachineBase", "RunningStatsBase",
                        "RangeSetBase", "ProtocolFactsBase"})
"""Bases whose ``__init__`` stands for the reference's (``implementation.twin`` keeps it):
each sets every field, all of them C fields, to the reference's initial value."""

TWIN_DUNDERS = {"RangeSetBase": frozenset({"__len__", "__iter__", "__contains__"})}
"""Per base, the special methods it defines that stand for the reference's
(``implementation.twin`` keeps them; every other special method stays the reference's)."""

cdef long long NO_LATE = 1LL << 62  # analysis.direction.NO_LATE


cdef class _Refs:
    """What the twins read from the reference modules: the classes their constructors
    build (the engine's, twins themselves), the table's members and the flag bits they
    compare, the evidence types and helpers they call. Those modules import this one, so
    they are read once, at the first use (:func:`_refs`)."""

    # classes the constructors build
    cdef object running_stats, range_set, endpoint, direction_stats, sender_state
    cdef object analysis_options, endpoint_machine, sequence_analyzer, peer_summary
    cdef object protocol_facts, rtt_estimator, no_samples
    cdef object direction_values, prefixed_client, prefixed_server
    # analysis.sequence
    cdef long long zero_window, window_full, truncated
    cdef object zero_window_period, window_full_event
    # connection
    cdef object established, new_event, flags_text, new_notable
    cdef object timeout_input
    cdef SlotsFactory event_factory, notable_factory  # or None: the classes are called
    cdef tuple flag_texts
    cdef bint fast_established
    cdef long long loss_signal, probe, retransmission, not_data_after_fin
    cdef object send_syn_ack, send_fin_crossed, recv_fin, send_after_challenged_rst
    cdef object closed, recv_fin_ack_of_fin, recv_ack, syn_received, ok, recv_rst
    cdef object send_rst, done_states, send_ack, send_fin, invalid_flags, ignored
    cdef object retransmission_action, infer, send_challenge_ack, send_after_lost_rst
    cdef dict event_reasons
    cdef dict transitions
    # fsm.TRANSITIONS by C index (:func:`_cell`): states and inputs found by identity, so a
    # lookup builds and hashes no (state, input) tuple; an event's text cached per cell
    cdef list state_members, input_members, state_values, rows, cell_texts
    cdef Py_ssize_t closing_index  # of CLOSING in state_values (-1: none)
    cdef Py_ssize_t n_inputs
    cdef unsigned char state_flags[64]  # by state index: STATE_DONE, STATE_ATTEMPT bits
    cdef object time_wait, unexpected, attempt_states
    cdef object recv_syn_ack, syn_sent, send_split_syn, recv_syn, send_syn, send_fin_again
    cdef object close_wait, recv_ack_unconfirmed, recv_ack_of_fin, last_ack, inactive
    cdef object peer_steady, addr_text, tfo_option, quiet_states, connection_compact
    # the compiled methods ``FlowRecord._build`` calls in C when a class keeps them
    cdef object peer_conn_state, peer_history, peer_completeness, facts_add_columns
    cdef object analyzer_add_columns, rstos0_history
    cdef bint connection_init_c  # ``connection`` keeps ConnectionBase's __init__
    cdef object neither, no_loss_signal, no_drops, event_class, connection


cdef _Refs _REFS = None


cdef inline _Refs _refs():
    return _REFS if _REFS is not None else _load_refs()


cdef _Refs _load_refs():
    global _REFS
    from tcptrace_py import compat, connection as c, facts, fsm, segment
    from tcptrace_py.analysis import direction, options, rangeset, rtt, sequence as q
    r = _Refs()
    r.running_stats = rtt.RunningStats
    r.rtt_estimator = rtt.RttEstimator
    r.no_samples = rtt.NO_SAMPLES
    r.range_set = rangeset.RangeSet
    r.endpoint = compat._Endpoint
    r.direction_stats = direction.DirectionStats
    r.sender_state = direction.SenderState
    r.analysis_options = options.AnalysisOptions
    r.endpoint_machine = fsm.EndpointMachine
    r.sequence_analyzer = q.SequenceAnalyzer
    r.direction_values = q._direction_values
    r.prefixed_client = q._PREFIXED["client_"]
    r.prefixed_server = q._PREFIXED["server_"]
    r.peer_summary = compat.PeerSummary
    r.protocol_facts = facts.ProtocolFacts
    r.zero_window = q._ZERO_WINDOW
    r.window_full = q._WINDOW_FULL
    r.truncated = q._TRUNCATED
    r.zero_window_period = q._new_zw_period
    r.window_full_event = q.WindowFull
    r.established = c._ESTABLISHED
    r.fast_established = c._FAST_ESTABLISHED
    r.loss_signal = c._LOSS_SIGNAL
    r.probe = c._PROBE
    r.retransmission = c._RETRANSMISSION
    r.not_data_after_fin = c._NOT_DATA_AFTER_FIN
    r.send_syn_ack = c._SEND_SYN_ACK
    r.send_fin_crossed = c._SEND_FIN_CROSSED
    r.recv_fin = c._RECV_FIN
    r.send_after_challenged_rst = c._SEND_AFTER_CHALLENGED_RST
    r.closed = c._CLOSED
    r.recv_fin_ack_of_fin = c._RECV_FIN_ACK_OF_FIN
    r.recv_ack = c._RECV_ACK
    r.syn_received = c._SYN_RECEIVED
    r.ok = c._OK
    r.recv_rst = c._RECV_RST
    r.send_rst = c._SEND_RST
    r.done_states = c._DONE_STATES
    r.send_ack = c._SEND_ACK
    r.send_fin = c._SEND_FIN
    r.invalid_flags = c._INVALID_FLAGS
    r.ignored = c._IGNORED
    r.retransmission_action = c._A_RETRANSMISSION
    r.infer = c._INFER
    r.send_challenge_ack = c._SEND_CHALLENGE_ACK
    r.send_after_lost_rst = c._SEND_AFTER_LOST_RST
    r.event_reasons = c._EVENT_REASONS
    r.transitions = fsm.TRANSITIONS
    r.state_members = list(fsm.TcpState)
    r.input_members = list(fsm.Input)
    r.state_values = [m._value_ for m in r.state_members]
    r.closing_index = _value_index(r.state_values, "CLOSING")
    r.n_inputs = len(r.input_members)
    r.rows = [None] * (len(r.state_members) * r.n_inputs)
    for (state, inp), row in fsm.TRANSITIONS.items():
        r.rows[r.state_members.index(state) * r.n_inputs + r.input_members.index(inp)] = row
    r.cell_texts = [None] * len(r.rows)
    if len(r.state_members) > 64:
        raise ValueError("more TcpState members than _Refs.state_flags holds")
    for i, state in enumerate(r.state_members):
        r.state_flags[i] = ((STATE_DONE if state in c._DONE_STATES else 0)
                            | (STATE_ATTEMPT if state in c._ATTEMPT_STATES else 0))
    r.time_wait = fsm._TIME_WAIT
    r.timeout_input = c._TIMEOUT
    r.attempt_states = c._ATTEMPT_STATES
    r.recv_syn_ack = c._RECV_SYN_ACK
    r.syn_sent = c._SYN_SENT
    r.send_split_syn = c._SEND_SPLIT_SYN
    r.recv_syn = c._RECV_SYN
    r.send_syn = c._SEND_SYN
    r.send_fin_again = c._SEND_FIN_AGAIN
    r.close_wait = c._CLOSE_WAIT
    r.last_ack = fsm.TcpState.LAST_ACK
    r.inactive = fsm.TcpState.INACTIVE
    r.peer_steady = compat.PeerSummary.steady
    r.recv_ack_unconfirmed = c._RECV_ACK_UNCONFIRMED
    r.recv_ack_of_fin = c._RECV_ACK_OF_FIN
    r.unexpected = fsm.A.UNEXPECTED
    r.new_event = c.new_event
    r.new_notable = c._new_notable
    r.event_factory = c.new_event if type(c.new_event) is SlotsFactory else None
    r.notable_factory = c._new_notable if type(c._new_notable) is SlotsFactory else None
    r.flags_text = c.flags_text
    r.flag_texts = segment._FLAG_TEXTS
    r.addr_text = segment.reference_addr_text
    r.tfo_option = facts.tfo_option
    r.quiet_states = c._QUIET_STATES
    r.neither = c.NEITHER
    r.event_class = c.Event
    r.connection = c.Connection
    r.no_drops = q.NO_DROPS
    r.no_loss_signal = c.NO_LOSS_SIGNAL
    r.connection_compact = ConnectionBase.compact
    r.connection_init_c = (isinstance(r.connection, type)
                           and issubclass(r.connection, ConnectionBase)
                           and r.connection.__init__ is ConnectionBase.__init__)
    r.peer_conn_state = PeerSummaryBase.conn_state
    r.rstos0_history = compat._rstos0_history
    r.peer_history = PeerSummaryBase.history
    r.peer_completeness = PeerSummaryBase.completeness
    r.facts_add_columns = ProtocolFactsBase.add_columns
    r.analyzer_add_columns = SequenceAnalyzerBase.add_columns
    # The _new_* constructors stand for these classes' calls: each must keep its base's
    # __init__ (implementation.twin gives it that for the bases in TWIN_INITS).
    for cls, base in ((r.running_stats, RunningStatsBase), (r.rtt_estimator, RttEstimatorBase),
                      (r.range_set, RangeSetBase),
                      (r.direction_stats, DirectionStatsBase),
                      (r.sender_state, SenderStateBase), (r.endpoint, EndpointBase),
                      (r.endpoint_machine, EndpointMachineBase),
                      (r.peer_summary, PeerSummaryBase),
                      (r.sequence_analyzer, SequenceAnalyzerBase),
                      (r.protocol_facts, ProtocolFactsBase)):
        if not (isinstance(cls, type) and issubclass(cls, base)
                and cls.__init__ is base.__init__):
            raise TypeError(f"{cls!r} is not a {base.__name__} keeping its __init__")
    _REFS = r
    return r


cdef tuple _NO_ARGS = ()


cdef inline object _tp_new(object cls):
    """``cls.__new__(cls)`` through the type's ``tp_new`` slot, as ``type.__call__`` does.

    Why: ``X.__new__(cls)`` written in Cython for a ``cls`` known only as an object is a
    method call (look ``__new__`` up, check the argument: ~800 instructions); a class call
    adds the argument parsing of ``__init__``. The engine builds about forty objects per
    connection, so its constructors (``_new_*`` below each twin base) allocate through the
    slot and then run the base's ``_init``, which is what its ``__init__`` runs. ``cls`` is
    always one of the engine's classes (read by :func:`_load_refs`, which checks that each
    keeps its base's ``__init__``)."""
    return (<PyTypeObject*>cls).tp_new(<type>cls, <PyObject*>_NO_ARGS, NULL)


cdef class RunningStatsBase:
    """Typed fields and ``add`` of ``analysis.rtt.RunningStats``."""

    cdef public long long count
    cdef public double min
    cdef public double max
    cdef public double _mean
    cdef public double _m2

    def __init__(self):
        """Twin of ``RunningStats.__init__``: no sample yet (the zeros the allocation
        already wrote; :func:`_new_running_stats` builds one without this call)."""
        self.count = 0
        self.min = 0.0
        self.max = 0.0
        self._mean = 0.0
        self._m2 = 0.0

    cpdef add(self, double x):
        self.count += 1
        if self.count == 1:
            self.min = x
            self.max = x
        elif x < self.min:
            self.min = x
        elif x > self.max:
            self.max = x
        cdef double delta = x - self._mean
        self._mean += delta / self.count
        self._m2 += delta * (x - self._mean)


cdef inline RunningStatsBase _new_running_stats(object cls):
    """``cls()`` for the engine's ``RunningStats`` (a subclass of :class:`RunningStatsBase`
    adding no field): the allocation's zeros are ``RunningStats.__init__``'s values, so
    neither the class call nor ``__init__`` runs."""
    return <RunningStatsBase?>_tp_new(cls)


cdef class RttEstimatorBase:
    """Typed fields and ``update`` of ``analysis.rtt.RttEstimator`` (RFC 6298 section 2);
    ``srtt_ns``/``rttvar_ns`` are None until the first sample, as in the reference."""

    cdef double _srtt
    cdef double _rttvar
    cdef bint _has_srtt
    cdef bint _has_rttvar
    cdef public double rto_ns
    cdef public long long samples
    cdef public long long backoffs
    cdef public long long _g_ns
    cdef public long long _min_ns
    cdef public long long _max_ns

    @property
    def srtt_ns(self):
        return self._srtt if self._has_srtt else None

    @srtt_ns.setter
    def srtt_ns(self, value):
        self._has_srtt = value is not None
        self._srtt = value if value is not None else 0.0

    @property
    def rttvar_ns(self):
        return self._rttvar if self._has_rttvar else None

    @rttvar_ns.setter
    def rttvar_ns(self, value):
        self._has_rttvar = value is not None
        self._rttvar = value if value is not None else 0.0

    def __init__(self, *, initial_rto_ns=1_000_000_000, min_rto_ns=1_000_000_000,
                 max_rto_ns=60_000_000_000, clock_granularity_ns=1_000_000):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init(initial_rto_ns, min_rto_ns, max_rto_ns, clock_granularity_ns)

    cdef int _init(self, initial_rto_ns, min_rto_ns, max_rto_ns,
                   clock_granularity_ns) except -1:
        """Twin of ``RttEstimator.__init__`` (rule 2.1: RTO is the initial one until a
        measurement is made)."""
        self._has_srtt = False
        self._srtt = 0.0
        self._has_rttvar = False
        self._rttvar = 0.0
        self.rto_ns = float(initial_rto_ns)
        self.samples = 0
        self.backoffs = 0
        self._g_ns = clock_granularity_ns
        self._min_ns = min_rto_ns
        self._max_ns = max_rto_ns
        return 0

    cpdef update(self, double r_ns):
        # A double, as the reference's float(r_ns): a sample between a time in 1970-2262 and
        # one beyond it (a pcapng interface's bad if_tsoffset) exceeds a long long.
        cdef double r = r_ns
        cdef double srtt, rttvar, d, kvar, rto
        if not self._has_srtt or not self._has_rttvar:
            srtt = r
            rttvar = r / 2.0
        else:
            d = self._srtt - r
            rttvar = 0.75 * self._rttvar + 0.25 * (d if d >= 0.0 else -d)
            srtt = 0.875 * self._srtt + 0.125 * r
        self._srtt = srtt
        self._rttvar = rttvar
        self._has_srtt = True
        self._has_rttvar = True
        kvar = 4.0 * rttvar
        rto = srtt + (kvar if kvar > self._g_ns else <double>self._g_ns)
        rto = rto if rto > self._min_ns else <double>self._min_ns
        self.rto_ns = <double>self._max_ns if rto > self._max_ns else rto
        self.samples += 1
        self.backoffs = 0


cdef RttEstimatorBase _new_rtt_estimator(object cls, initial_rto_ns, min_rto_ns, max_rto_ns,
                                         clock_granularity_ns):
    """``cls(initial_rto_ns=..., ...)`` for the engine's ``RttEstimator`` (:func:`_tp_new`)."""
    cdef RttEstimatorBase est = <RttEstimatorBase?>_tp_new(cls)
    est._init(initial_rto_ns, min_rto_ns, max_rto_ns, clock_granularity_ns)
    return est

cdef Py_ssize_t _bisect_left(list a, long long x):
    cdef Py_ssize_t lo = 0, hi = len(a), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if <long long>a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef Py_ssize_t _bisect_right(list a, long long x):
    cdef Py_ssize_t lo = 0, hi = len(a), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < <long long>a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


# Bounds within which ``RangeSetBase.covered`` sums in C (each term below 2**53, the total
# checked before each: no overflow); beyond them it sums Python's integers.
cdef long long COVERED_LIMIT = 1LL << 52
cdef long long COVERED_TOTAL = 1LL << 62


cdef class RangeSetBase:
    """Typed fields and the methods of ``analysis.rangeset.RangeSet``.

    Most sets hold one range their whole life (a loss-free stream's bytes): that range is
    kept in two C fields, and the reference's two lists (``_starts``, ``_ends``) are made
    at the second range, or when the reference's code reads them; from then on the lists
    hold every range. A side's set was ~220 bytes with its lists and end integer, two a
    connection, for the connection's life; ~70 now."""

    cdef list _s_list, _e_list  # the ranges (None: at most one, in _s0/_e0)
    cdef long long _s0, _e0
    cdef bint _one  # _s0/_e0 hold a range (when the lists are None)

    def __init__(self):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init()

    cdef int _init(self) except -1:
        """Twin of ``RangeSet.__init__``: no range."""
        self._s_list = self._e_list = None
        self._one = False
        return 0

    cdef int _to_lists(self) except -1:
        if self._s_list is None:
            self._s_list = [self._s0] if self._one else []
            self._e_list = [self._e0] if self._one else []
        return 0

    @property
    def _starts(self):
        """The reference's list of range starts (made now if the set held one range)."""
        self._to_lists()
        return self._s_list

    @_starts.setter
    def _starts(self, value):
        self._to_lists()
        self._s_list = value

    @property
    def _ends(self):
        """The reference's list of range ends (made now if the set held one range)."""
        self._to_lists()
        return self._e_list

    @_ends.setter
    def _ends(self, value):
        self._to_lists()
        self._e_list = value

    cpdef long long add(self, long long start, long long end) except? -1:
        cdef long long ov0
        if end <= start:
            return 0
        if self._s_list is None:
            if not self._one:
                self._s0, self._e0, self._one = start, end, True
                return 0
            if start >= self._e0:
                if start == self._e0:
                    self._e0 = end
                    return 0
            elif end >= self._s0:  # overlaps or touches the one range: it stays one
                ov0 = (self._e0 if self._e0 < end else end) \
                    - (self._s0 if self._s0 > start else start)
                if start < self._s0:
                    self._s0 = start
                if end > self._e0:
                    self._e0 = end
                return ov0 if ov0 > 0 else 0
            self._to_lists()
        cdef list starts = self._s_list
        cdef list ends = self._e_list
        cdef Py_ssize_t n = len(starts)
        if n == 0 or start >= <long long>ends[n - 1]:
            if n and start == <long long>ends[n - 1]:
                ends[n - 1] = end
            else:
                starts.append(start)
                ends.append(end)
            return 0
        cdef Py_ssize_t lo = _bisect_left(ends, start)
        cdef Py_ssize_t hi = _bisect_right(starts, end)
        cdef long long overlap = 0, new_start = start, new_end = end, s, e, ov
        cdef Py_ssize_t i
        for i in range(lo, hi):
            s = starts[i]
            e = ends[i]
            ov = (e if e < end else end) - (s if s > start else start)
            if ov > 0:
                overlap += ov
            if s < new_start:
                new_start = s
            if e > new_end:
                new_end = e
        starts[lo:hi] = [new_start]
        ends[lo:hi] = [new_end]
        return overlap

    cdef long long _add_end(self, long long start, long long end,
                            object end_obj) except? -1:
        """:meth:`add` for in-order data, with ``end``'s int object (``end_obj``): the
        common case, a range extending the last one, stores that object (no second one)."""
        if self._s_list is None:
            return self.add(start, end)
        cdef list ends = self._e_list
        cdef Py_ssize_t n = len(ends)
        if start < end and n and len(self._s_list) == n and start == <long long>ends[n - 1]:
            ends[n - 1] = end_obj
            return 0
        return self.add(start, end)

    cpdef object covered(self):
        """Twin of ``RangeSet.covered``: the total length of the ranges."""
        if self._s_list is None:
            if not self._one:
                return 0
            if -COVERED_LIMIT < self._s0 < COVERED_LIMIT \
                    and -COVERED_LIMIT < self._e0 < COVERED_LIMIT:
                return self._e0 - self._s0
            return <object>self._e0 - <object>self._s0
        cdef list starts = self._s_list
        cdef list ends = self._e_list
        cdef Py_ssize_t n = len(starts), i
        if len(ends) != n:
            raise ValueError("RangeSet: starts and ends differ in length")
        cdef long long total = 0, s, e
        for i in range(n):
            s = starts[i]
            e = ends[i]
            if not (-COVERED_LIMIT < s < COVERED_LIMIT and -COVERED_LIMIT < e < COVERED_LIMIT
                    and -COVERED_TOTAL < total < COVERED_TOTAL):
                return sum([ends[j] - starts[j] for j in range(n)])  # beyond C's range
            total += e - s
        return total

    def overlap(self, start, end):
        """Twin of ``RangeSet.overlap`` (the one-range case; else the reference's)."""
        if self._s_list is not None:
            return type(self).__reference__.overlap(self, start, end)
        if end <= start or not self._one:
            return 0
        ov = min(self._e0, end) - max(self._s0, start)
        return ov if ov > 0 else 0

    def bounds(self):
        """Twin of ``RangeSet.bounds``."""
        if self._s_list is not None:
            return type(self).__reference__.bounds(self)
        return (self._s0, self._e0) if self._one else None

    def merge_lowest(self, n):
        """Twin of ``RangeSet.merge_lowest``: one range or none has no hole to fill."""
        if self._s_list is not None:
            return type(self).__reference__.merge_lowest(self, n)
        return 0

    def holes(self):
        """Twin of ``RangeSet.holes``."""
        if self._s_list is not None:
            return type(self).__reference__.holes(self)
        return 0

    def __len__(self):
        if self._s_list is not None:
            return len(self._s_list)
        return 1 if self._one else 0

    def __iter__(self):
        if self._s_list is not None:
            return iter(zip(self._s_list, self._e_list, strict=True))
        return iter(((self._s0, self._e0),) if self._one else ())

    def __contains__(self, value):
        if self._s_list is not None:
            return type(self).__reference__.__contains__(self, value)
        return isinstance(value, int) and self._one and self._s0 <= value < self._e0


cdef RangeSetBase _new_range_set(object cls):
    """``cls()`` for the engine's ``RangeSet`` (:func:`_tp_new`)."""
    cdef RangeSetBase ranges = <RangeSetBase?>_tp_new(cls)
    ranges._init()
    return ranges


# ------------------------------------------------ evidence objects (events.py, connection.py)
cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        const char* name
        int type
        Py_ssize_t offset
        int flags
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    enum:
        T_OBJECT_EX
        READONLY
    ctypedef struct PyObject


cdef enum:
    MAX_FACTORY_FIELDS = 32


cdef class SlotsFactory:
    """``cls(*values)`` for a slotted dataclass, by writing each field's slot directly.

    Why: a dataclass's generated ``__init__`` is Python code run by the interpreter (a
    frozen one sets each field through ``object.__setattr__``): ~1.4 us for an ``Event``'s
    13 fields, created several times per connection on the full path. Filling the slots
    of a fresh instance gives the same object (each slot holds what ``__init__`` would have
    stored) in a fraction of that. Only for the classes ``implementation.slots_factory``
    accepts: every field a slot of the class itself, set by ``__init__`` from the same
    positional argument, defaults plain values, no ``__post_init__``."""

    cdef object cls
    cdef Py_ssize_t n
    cdef Py_ssize_t offsets[MAX_FACTORY_FIELDS]
    cdef tuple defaults

    def __init__(self, cls, tuple names, tuple defaults):
        """``names``: the fields in ``__init__`` order; ``defaults``: the values of the
        last ``len(defaults)`` of them when a call leaves them out."""
        if len(names) > MAX_FACTORY_FIELDS or len(defaults) > len(names):
            raise ValueError(f"{cls.__name__}: {len(names)} fields")
        cdef PyMemberDef* member
        for i, name in enumerate(names):
            descr = cls.__dict__.get(name)
            if type(descr) is not _MemberDescriptorType:
                raise TypeError(f"{cls.__name__}.{name} is not a slot of the class")
            member = (<PyMemberDescrObject*>descr).d_member
            if member.type != T_OBJECT_EX or member.flags & READONLY:
                raise TypeError(f"{cls.__name__}.{name} is not a writable object slot")
            self.offsets[i] = member.offset
        self.cls = cls
        self.n = len(names)
        self.defaults = defaults

    def __call__(self, *values):
        return self.make(values)

    cdef object make(self, tuple values):
        """``cls(*values)``: what the compiled paths call, without the call's argument
        packing."""
        cdef Py_ssize_t given = len(values)
        cdef Py_ssize_t missing = self.n - given
        if missing < 0 or missing > len(self.defaults):
            raise TypeError(f"{self.cls.__name__}() takes {self.n - len(self.defaults)} "
                            f"to {self.n} positional arguments but {given} were given"
                            if self.defaults else f"{self.cls.__name__}() takes {self.n} "
                            f"positional arguments but {given} were given")
        obj = _tp_new(self.cls)
        cdef char* base = <char*><PyObject*>obj
        cdef Py_ssize_t i
        cdef Py_ssize_t first_default = len(self.defaults) - missing
        for i in range(self.n):
            value = values[i] if i < given else self.defaults[first_default + i - given]
            Py_INCREF(value)
            (<PyObject**>(base + self.offsets[i]))[0] = <PyObject*>value
        return obj


from types import MemberDescriptorType as _MemberDescriptorType  # noqa: E402


cdef class SentSegment:
    """Twin of ``analysis.direction.SentSegment`` (complete: it has no other methods)."""

    cdef public long long start
    cdef public long long end
    cdef public object frame
    cdef public object ts_ns
    cdef public object last_ts_ns
    cdef public long long tx
    cdef public long long last_interval_ns
    cdef public long long rexmit_index
    cdef public object control

    def __init__(self, long long start, long long end, frame, ts_ns, control):
        self.start = start
        self.end = end
        self.frame = frame
        self.ts_ns = ts_ns
        self.last_ts_ns = ts_ns
        self.tx = 1
        self.last_interval_ns = -1
        self.rexmit_index = -1
        self.control = control


cdef class DirectionStatsBase:
    """The steady path's fields of ``analysis.direction.DirectionStats``."""

    cdef public long long packets
    cdef public long long ack_pkts
    cdef public long long pure_acks
    cdef public long long data_pkts
    cdef public long long data_bytes
    cdef public long long pushed_pkts
    cdef public long long tso_pkts
    cdef public long long iw_bytes
    cdef public long long iw_pkts
    cdef public long long seg_min
    cdef public long long seg_max
    cdef public long long win_min
    cdef public long long win_max
    cdef public long long win_sum
    cdef public long long win_n
    cdef public long long mss
    cdef long long idle_max_c
    cdef object idle_max_o
    """``idle_max_ns`` as a pair of fields (see :func:`_split_int`): the steady path
    compares every segment's gap with it."""
    cdef long long last_ts_c
    cdef object last_ts_o
    """``last_ts_ns`` as a pair of fields (see :func:`_split_int`)."""
    cdef public object rtt
    cdef public object rst_pkts
    cdef public object rexmt_data_pkts
    cdef public object rexmt_data_bytes
    cdef public object syn_pkts
    cdef public object fin_pkts
    cdef public object syn_rexmt
    cdef public object fin_rexmt
    cdef public object retransmitted_segments
    cdef public object rexmt_rto
    cdef public object rexmt_fast
    cdef public object rexmt_tlp
    cdef public object rexmt_spurious
    cdef public object ooo_pkts
    cdef public object lost_segments
    cdef public object missed_bytes
    cdef public object acks_unseen
    cdef public object dup_acks
    cdef public object triple_dup_acks
    cdef public object sack_pkts
    cdef public object dsack_pkts
    cdef public object max_sack_blocks
    cdef public object zero_window_advs
    cdef public object zwp_pkts
    cdef public object zwp_bytes
    cdef public object keepalives
    cdef public object keepalive_acks
    cdef public object zwp_acks
    cdef public object window_updates
    cdef public object window_full
    cdef public object wscale
    cdef public object sack_permitted
    cdef public object timestamps
    cdef public object truncated_bytes
    cdef public object truncated_pkts
    cdef public object truncated_first_frame
    cdef public object truncated_first_ts_ns
    cdef public object truncated_last_frame
    cdef public object ambiguous_acks
    cdef public object handshake_rtt_ns
    cdef public object rexmit_interval
    cdef public object backoff_ratio
    cdef public object unique_bytes
    cdef public object first_ts_ns
    cdef public long long isn
    cdef public object midstream

    @property
    def idle_max_ns(self):
        return _joined(self.idle_max_c, self.idle_max_o)

    @idle_max_ns.setter
    def idle_max_ns(self, value):
        self.idle_max_o = _split_int(value, &self.idle_max_c)

    @property
    def last_ts_ns(self):
        return _joined(self.last_ts_c, self.last_ts_o)

    @last_ts_ns.setter
    def last_ts_ns(self, value):
        self.last_ts_o = _split_int(value, &self.last_ts_c)

    def __init__(self):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init()

    cdef int _init(self) except -1:
        """Twin of ``analysis.direction.DirectionStats.__init__``: the same values, written
        into C fields (the reference's 64 attribute stores each look up a descriptor)."""
        cdef _Refs refs = _refs()
        self.packets = 0
        self.ack_pkts = 0
        self.pure_acks = 0
        self.rst_pkts = 0
        self.data_pkts = 0
        self.data_bytes = 0
        self.rexmt_data_pkts = 0
        self.rexmt_data_bytes = 0
        self.syn_pkts = 0
        self.fin_pkts = 0
        self.syn_rexmt = 0
        self.fin_rexmt = 0
        self.retransmitted_segments = 0
        self.rexmt_rto = 0
        self.rexmt_fast = 0
        self.rexmt_tlp = 0
        self.rexmt_spurious = 0
        self.ooo_pkts = 0
        self.lost_segments = 0
        self.missed_bytes = 0
        self.acks_unseen = 0
        self.dup_acks = 0
        self.triple_dup_acks = 0
        self.sack_pkts = 0
        self.dsack_pkts = 0
        self.max_sack_blocks = 0
        self.zero_window_advs = 0
        self.zwp_pkts = 0
        self.zwp_bytes = 0
        self.keepalives = 0
        self.keepalive_acks = 0
        self.zwp_acks = 0
        self.window_updates = 0
        self.window_full = 0
        self.pushed_pkts = 0
        self.mss = -1
        self.wscale = -1
        self.sack_permitted = False
        self.timestamps = False
        self.iw_bytes = 0
        self.iw_pkts = 0
        self.seg_min = 0
        self.seg_max = 0
        self.win_min = -1
        self.win_max = 0
        self.win_sum = 0
        self.win_n = 0
        self.idle_max_c = 0
        self.idle_max_o = None
        self.truncated_bytes = 0
        self.truncated_pkts = 0
        self.truncated_first_frame = -1
        self.truncated_first_ts_ns = -1
        self.truncated_last_frame = -1
        self.tso_pkts = 0
        self.rtt = _new_running_stats(refs.running_stats)
        self.ambiguous_acks = 0
        self.handshake_rtt_ns = -1
        self.rexmit_interval = refs.no_samples  # analysis.rtt.NO_SAMPLES
        self.backoff_ratio = refs.no_samples
        self.unique_bytes = 0
        self.first_ts_ns = -1
        self.last_ts_c = -1
        self.last_ts_o = None
        self.isn = -1
        self.midstream = False
        return 0


cdef DirectionStatsBase _new_direction_stats(object cls):
    """``cls()`` for the engine's ``DirectionStats`` (:func:`_tp_new`)."""
    cdef DirectionStatsBase st = <DirectionStatsBase?>_tp_new(cls)
    st._init()
    return st

cdef class SenderStateBase:
    """The steady path's fields of ``analysis.direction.SenderState``."""

    cdef public long long base
    cdef public long long snd_una
    cdef public long long snd_nxt
    cdef public long long last_ack_raw
    cdef public long long last_win_raw
    cdef public long long win_scaled
    cdef public long long shift
    cdef public long long dupacks
    cdef public long long zw_open_index
    cdef public long long pending_ack
    cdef public long long late_low
    cdef public bint win_known
    cdef public bint iw_done
    cdef public bint last_sent_ack
    cdef public bint mutable
    cdef public object ranges
    cdef object _by_start_d, _by_end_d  # the indexes (None while packed, below)
    cdef long long* _tail  # packed records: start, end, frame, ts each
    cdef Py_ssize_t _tail_n  # records packed (-1: the dicts hold the indexes)
    cdef object _order  # ``order`` (read through the property, which flushes the pending)
    cdef long long* _pk  # pending records after ``_order``: start, end, frame, ts each
    cdef Py_ssize_t _pk_n, _pk_cap  # pending records, room (see _flush)
    cdef long long _pend_end  # the last pending record's end
    cdef object _pend_fin  # the first FIN's record, pending in ``by_end`` after them (or None)
    cdef public object est
    cdef long long last_ts_c
    cdef object last_ts_o
    """``last_ts_ns`` as a pair of fields (see :func:`_split_int`)."""
    cdef public long long fin_rel
    cdef public object syn_seen
    cdef public object synack_sent
    cdef public object sack_high
    cdef public object recovery_end
    cdef public object zwp_rel
    cdef public object pending_index
    cdef object _syn_rec, _fin_rec
    cdef long long* _ctl  # packed SYN and FIN records: _CTL_FIELDS each, the SYN's first
    cdef uint8_t _ctl_packed  # 1: the SYN's record is packed, 2: the FIN's
    cdef public object late
    cdef public object gaps
    cdef public object filled_bytes

    @property
    def last_ts_ns(self):
        return _joined(self.last_ts_c, self.last_ts_o)

    @last_ts_ns.setter
    def last_ts_ns(self, value):
        self.last_ts_o = _split_int(value, &self.last_ts_c)

    def __init__(self, est):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init(est)

    cdef int _init(self, est) except -1:
        """Twin of ``analysis.direction.SenderState.__init__``."""
        self.base = -1
        self.snd_una = 0
        self.snd_nxt = 0
        self.fin_rel = -1
        self.syn_seen = False
        self.synack_sent = False
        self.ranges = _new_range_set(_refs().range_set)
        self._by_start_d = self._by_end_d = None  # packed, empty: made at the first record
        self._tail_n = 0
        self._order = None
        self._pk_n = 0
        self._pend_fin = None
        self.last_ack_raw = -1
        self.last_win_raw = -1
        self.win_scaled = 0
        self.win_known = False
        self.shift = 0
        self.dupacks = 0
        self.sack_high = -1
        self.recovery_end = -1
        self.zwp_rel = -1
        self.pending_ack = 0
        self.pending_index = -1
        self.iw_done = False
        self._syn_rec = self._fin_rec = None
        self.est = est
        self.zw_open_index = -1
        self.last_ts_c = -1
        self.last_ts_o = None
        self.last_sent_ack = False
        self.mutable = False
        self.late = None
        self.late_low = NO_LATE
        self.gaps = None
        self.filled_bytes = 0
        return 0

    def make_mutable(self):
        """Twin of ``SenderState.make_mutable``: every ``FreshSegment`` tuple becomes one
        ``SentSegment`` (a tuple in several containers becomes one shared object), in the
        same positions, built without the constructor's argument parsing. Pending records
        (:meth:`_flush`) stay pending: from now on each is made a ``SentSegment`` where
        the flush puts it (:meth:`_pending_record`), and in-order data keeps being
        pending records rather than objects in three containers (~1.5 k instructions a
        segment of a sender that once retransmitted, 172 k segments of 2m.pcap)."""
        self.mutable = True
        cdef _MadeRecords made = _MadeRecords()
        if self._tail_n >= 0:
            self._unpack()
        # The old containers stay referenced until all three are rebuilt: ``made`` is
        # keyed by identity, and no tuple may be freed (its address reused) in between.
        old_start, old_end = <dict?>self._by_start_d, <dict?>self._by_end_d
        old_order = self._order
        made.reserve((len(<list?>old_order) if old_order is not None else 0)
                     + len(old_start) + len(old_end))
        if old_order is not None:
            self._order = [made.of(rec) for rec in old_order]
        # Presized: grown one insertion at a time, a dict was resized about log2(n)
        # times (~350 instructions an insertion on 2m.pcap).
        cdef dict by_start = _PyDict_NewPresized(len(old_start))
        cdef dict by_end = _PyDict_NewPresized(len(old_end))
        for k, rec in old_start.items():
            by_start[k] = made.of(rec)
        for k, rec in old_end.items():
            by_end[k] = made.of(rec)
        self._by_start_d = by_start
        self._by_end_d = by_end

    def __dealloc__(self):
        PyMem_Free(self._tail)
        PyMem_Free(self._ctl)
        PyMem_Free(self._pk)

    @property
    def syn_rec(self):
        """The reference's record of the side's first SYN (made now if packed)."""
        if self._ctl_packed & 1:
            self._unpack_control(1)
        return self._syn_rec

    @syn_rec.setter
    def syn_rec(self, value):
        _set_record(self, 1, value)

    @property
    def fin_rec(self):
        """The reference's record of the side's first FIN (made now if packed)."""
        if self._ctl_packed & 2:
            self._unpack_control(2)
        return self._fin_rec

    @fin_rec.setter
    def fin_rec(self, value):
        _set_record(self, 2, value)

    cdef int _unpack_control(self, uint8_t which) except -1:
        """Make the ``SentSegment`` of the packed SYN (``which`` 1) or FIN (2) record."""
        cdef long long* f = &self._ctl[0 if which == 1 else _CTL_FIELDS]
        cdef SentSegment rec = SentSegment.__new__(SentSegment)
        rec.start, rec.end = f[0], f[1]
        rec.frame, rec.ts_ns, rec.last_ts_ns = f[2], f[3], f[4]
        rec.tx, rec.last_interval_ns, rec.rexmit_index = f[5], f[6], f[7]
        rec.control = "syn" if which == 1 else "fin"
        _set_record(self, which, rec)  # no longer packed
        return 0

    cdef int _pack_controls(self) except -1:
        """Pack the SYN and FIN records of a compacted side when nothing else holds them
        (no index or ``order`` entry): a ``SentSegment`` and its integers were ~170 bytes
        each, two a side, for the ~60 s a connection waits out TIME_WAIT."""
        cdef uint8_t which
        cdef long long vals[_CTL_FIELDS]
        cdef SentSegment r
        for which in (1, 2):
            rec = self._syn_rec if which == 1 else self._fin_rec
            if type(rec) is not SentSegment or self._ctl_packed & which:
                continue
            r = <SentSegment>rec
            if r.control != ("syn" if which == 1 else "fin") \
                    or not _as_ll(r.frame, &vals[2]) or not _as_ll(r.ts_ns, &vals[3]) \
                    or not _as_ll(r.last_ts_ns, &vals[4]) or self._holds(rec):
                continue
            vals[0], vals[1] = r.start, r.end
            vals[5], vals[6], vals[7] = r.tx, r.last_interval_ns, r.rexmit_index
            if self._ctl == NULL:
                self._ctl = <long long*>PyMem_Malloc(2 * _CTL_FIELDS * sizeof(long long))
                if self._ctl == NULL:
                    raise MemoryError()
            memcpy(&self._ctl[0 if which == 1 else _CTL_FIELDS], vals,
                   _CTL_FIELDS * sizeof(long long))
            self._ctl_packed |= which
            if which == 1:
                self._syn_rec = None
            else:
                self._fin_rec = None
        return 0

    def packed_controls(self):
        """(the SYN's record is packed, the FIN's is), for tests."""
        return bool(self._ctl_packed & 1), bool(self._ctl_packed & 2)

    cdef bint _holds(self, rec) except -1:
        """``rec`` is in an index or ``order`` (by identity)."""
        for container in (self._by_start_d, self._by_end_d):
            if type(container) is dict:
                for v in (<dict>container).values():
                    if v is rec:
                        return True
            elif container is not None:
                return True  # not the engine's own: assume it does
        if rec is self._pend_fin:
            return True
        if self._order is not None:
            for v in self._order:
                if v is rec:
                    return True
        return False

    @property
    def order(self):
        """The reference's remembered segments in the order sent (the indexes are
        completed first: code that changes this list also changes them)."""
        self._flush()
        return self._order

    @order.setter
    def order(self, value):
        self._flush()
        self._order = value

    @property
    def by_start(self):
        """The reference's index of remembered segments by start (made now if packed)."""
        return _starts_of(self)

    @by_start.setter
    def by_start(self, value):
        self._unpack()
        self._flush()
        self._by_start_d = value

    @property
    def by_end(self):
        """The reference's index of remembered segments by end (made now if packed)."""
        return _ends_of(self)

    @by_end.setter
    def by_end(self, value):
        self._unpack()
        self._flush()
        self._by_end_d = value

    cdef int _flush(self) except -1:
        """Make the pending records (:func:`_in_order_data`) the records the reference
        would have made (``FreshSegment`` tuples, ``SentSegment`` objects once the sender
        is mutable: :meth:`_pending_record`), append them to ``order`` and put each into
        both indexes under its start and end, in the order sent; then the pending FIN
        record into ``by_end``. The indexes and ``order`` then hold what the
        reference's would.

        Why pending: in-order data made a tuple and two int objects per segment, appended
        it to ``order`` and put it in both indexes (two dict inserts, ~350 instructions
        each); most records were read again only when the connection was compacted, which
        keeps two of them. A pending record is four C integers. While records are pending
        their keys increase strictly (each starts at or after the previous one's end), so
        the ACK path finds one by bisection (:func:`_end_lookup`), and the prune and the
        compaction treat them as the last records and the indexes' last entries
        (:func:`_prune_c`, :func:`_compact_sender_c`)."""
        if self._pk_n:
            self._flush_first(self._pk_n)
        fin = self._pend_fin
        if fin is not None:
            self._pend_fin = None
            (<dict?>self._by_end_d)[(<SentSegment?>fin).end] = fin
        return 0

    cdef object _flush_first(self, Py_ssize_t n):
        """Make the first ``n`` pending records (``0 < n <= _pk_n``) as :meth:`_flush`
        does (appended to ``order``, put into both indexes, in the order sent) and drop
        them from the pending ones; the last one made. The others stay pending, still the
        last records and the indexes' last entries: what the reference did when it sent
        them, in the same order (:meth:`record_ending`)."""
        cdef Py_ssize_t i
        if self._order is None:
            self._order = []
        order = <list?>self._order
        by_start = <dict?>self._by_start_d
        by_end = <dict?>self._by_end_d
        rec = None
        for i in range(n):
            rec = self._pending_record(i)
            order.append(rec)
            self._index_pending(by_start, by_end, i, rec)
        self._drop_pending(n)
        return rec

    def record_ending(self, end):
        """Twin of ``SenderState.record_ending`` (``by_end.get(end)``, to read only): a
        pending record (or the pending FIN record) is found without making any (the last
        inserted one under its key, as :func:`_end_lookup`), and a pending record is
        answered with a copy (:meth:`_pending_record`), which no index holds.

        Why: a sender that re-sent data makes each pending record a ``SentSegment`` at a
        flush (two boxed keys, two dict inserts and a list append, ~1.4 k instructions),
        and an ACK the reference's ``_on_ack`` took made every pending record up to the
        one it ends at: ~80 k instructions an ACK on 2m.pcap (the ACK of a repaired loss
        covers the whole window; acknowledged pending records stay pending until pruned,
        :func:`_prune_c`)."""
        cdef long long e
        cdef Py_ssize_t i
        if self._tail_n >= 0:
            self._unpack()
        if self._has_pending() and _as_ll(end, &e):
            fin = self._pend_fin
            if fin is not None and (<SentSegment?>fin).end == e:
                return fin
            i = _pending_index(self, e)
            if i >= 0:
                return self._pending_record(i)
            return (<dict?>self._by_end_d).get(end)
        return _ends_of(self).get(end)

    def record_starting(self, start):
        """Twin of ``SenderState.record_starting`` (``by_start.get(start)``; see
        :meth:`record_ending`: the pending FIN record is in no start index)."""
        cdef long long v
        cdef Py_ssize_t i
        if self._tail_n >= 0:
            self._unpack()
        if self._pk_n and _as_ll(start, &v):
            i = _pending_find(self, v, 0)
            if i >= 0:
                return self._flush_first(i + 1)
            return (<dict?>self._by_start_d).get(start)
        return _starts_of(self).get(start)

    def tracked(self):
        """Twin of ``SenderState.tracked`` (``len(order)``): the pending records counted
        without making them."""
        order = self._order
        return (len(order) if order is not None else 0) + self._pk_n

    cdef int _push_pending(self, long long start, long long end, long long frame,
                           long long ts) except -1:
        """Append one pending record (see :meth:`_flush`)."""
        cdef Py_ssize_t cap
        cdef long long* grown
        if self._pk_n == self._pk_cap:
            cap = 8 if self._pk_cap < 8 else 2 * self._pk_cap
            grown = <long long*>PyMem_Realloc(self._pk, 4 * cap * sizeof(long long))
            if grown == NULL:
                raise MemoryError()
            self._pk = grown
            self._pk_cap = cap
        cdef long long* r = &self._pk[4 * self._pk_n]
        r[0], r[1], r[2], r[3] = start, end, frame, ts
        self._pk_n += 1
        self._pend_end = end
        return 0

    cdef object _pending_record(self, Py_ssize_t i):
        """Pending record ``i`` as the reference's record (a new one): its
        ``FreshSegment`` tuple, or its ``SentSegment`` once the sender is mutable. Nothing
        changes a record while it is pending (every change finds it through ``order`` or
        an index, which flush first), so it is made as the reference made it when sent."""
        cdef long long* r = &self._pk[4 * i]
        if self.mutable:
            return _fresh_sent_segment(r[0], r[1], r[2], r[3])
        return (r[0], r[1], r[2], r[3])

    cdef int _index_pending(self, dict by_start, dict by_end, Py_ssize_t i,
                            object rec) except -1:
        """Put ``rec``, pending record ``i`` made (:meth:`_pending_record`), into both
        indexes under its start and end (a tuple's own objects)."""
        if type(rec) is tuple:
            by_start[(<tuple>rec)[0]] = rec
            by_end[(<tuple>rec)[1]] = rec
        else:
            by_start[self._pk[4 * i]] = rec
            by_end[self._pk[4 * i + 1]] = rec
        return 0

    cdef int _drop_pending(self, Py_ssize_t n) except -1:
        """Forget the first ``n`` pending records."""
        if n >= self._pk_n:
            self._pk_n = 0
        elif n > 0:
            memmove(self._pk, &self._pk[4 * n], 4 * (self._pk_n - n) * sizeof(long long))
            self._pk_n -= n
        return 0

    cdef inline bint _has_pending(self) noexcept:
        return self._pk_n > 0 or self._pend_fin is not None

    def pending_records(self):
        """Records not yet in ``order`` and the indexes (for tests)."""
        return self._pk_n

    cdef int _unpack(self) except -1:
        """Make the indexes from the packed records (one tuple each, in both dicts, in
        the order they were packed), and drop the packed ones."""
        if self._tail_n < 0:
            return 0
        cdef dict by_start = {}
        cdef dict by_end = {}
        cdef long long* t
        cdef Py_ssize_t i
        for i in range(self._tail_n):
            t = &self._tail[4 * i]
            rec = (t[0], t[1], t[2], t[3])
            by_start[(<tuple>rec)[0]] = rec
            by_end[(<tuple>rec)[1]] = rec
        PyMem_Free(self._tail)
        self._tail = NULL
        self._tail_n = -1
        self._by_start_d = by_start
        self._by_end_d = by_end
        return 0

    cdef int _pack(self) except -1:
        """Pack the indexes when they hold nothing but a compacted connection's tail: at
        most ``COMPACT_TAIL`` first transmissions (``FreshSegment`` tuples), each under its
        start in ``by_start`` and its end in ``by_end``, in the same order, held nowhere
        else (no ``order``, no late transmissions). Their dicts, tuples and integers were
        ~1.5 KB a connection waiting out TIME_WAIT; 32 bytes a record here. Otherwise
        the dicts stay."""
        if self._tail_n >= 0 or self._order is not None or self.late:
            return 0
        if type(self._by_start_d) is not dict or type(self._by_end_d) is not dict:
            return 0
        cdef dict by_start = <dict>self._by_start_d
        cdef dict by_end = <dict>self._by_end_d
        cdef Py_ssize_t n = len(by_start), i = 0
        if n != len(by_end) or n > COMPACT_TAIL:
            return 0
        cdef long long vals[4 * COMPACT_TAIL]
        cdef Py_ssize_t j
        for k, rec in by_start.items():
            if type(rec) is not tuple or len(<tuple>rec) != 4 or k != (<tuple>rec)[0]:
                return 0
            for j in range(4):
                if not _as_ll((<tuple>rec)[j], &vals[4 * i + j]):
                    return 0
            i += 1
        i = 0
        recs = list(by_start.values())
        for k, rec in by_end.items():
            if rec is not recs[i] or k != (<tuple>rec)[1]:
                return 0
            i += 1
        if n:
            self._tail = <long long*>PyMem_Malloc(4 * n * sizeof(long long))
            if self._tail == NULL:
                raise MemoryError()
            memcpy(self._tail, vals, 4 * n * sizeof(long long))
        self._tail_n = n
        self._by_start_d = self._by_end_d = None
        return 0

    def packed_records(self):
        """Records the indexes hold packed (-1: they are dicts), for tests."""
        return self._tail_n


cdef enum:
    _CTL_FIELDS = 8  # start, end, frame, ts_ns, last_ts_ns, tx, last_interval_ns, rexmit_index


cdef inline bint _no_record(SenderStateBase state, uint8_t which) noexcept:
    """The side has no SYN (``which`` 1) or FIN (2) record, packed or not."""
    if state._ctl_packed & which:
        return False
    return (state._syn_rec if which == 1 else state._fin_rec) is None


cdef int _set_record(SenderStateBase state, uint8_t which, object rec) except -1:
    """``state.syn_rec = rec`` (``which`` 1) or ``state.fin_rec = rec`` (2)."""
    state._ctl_packed &= ~which
    if not state._ctl_packed:
        PyMem_Free(state._ctl)
        state._ctl = NULL
    if which == 1:
        state._syn_rec = rec
    else:
        state._fin_rec = rec
    return 0


cdef inline dict _starts_of(SenderStateBase state):
    """``state.by_start`` (made from the packed records, with the pending ones, if need
    be)."""
    if state._tail_n >= 0:
        state._unpack()
    if state._has_pending():
        state._flush()
    return <dict?>state._by_start_d


cdef inline dict _ends_of(SenderStateBase state):
    """``state.by_end`` (made from the packed records, with the pending ones, if need
    be)."""
    if state._tail_n >= 0:
        state._unpack()
    if state._has_pending():
        state._flush()
    return <dict?>state._by_end_d


cdef Py_ssize_t _pending_find(SenderStateBase state, long long value,
                              Py_ssize_t field) noexcept:
    """Index of the pending record whose ``field`` (0: start, 1: end) is ``value``, or -1
    (bisection: starts and ends both increase along the pending records)."""
    cdef Py_ssize_t lo = 0, hi = state._pk_n, mid
    cdef long long v
    while lo < hi:
        mid = (lo + hi) >> 1
        v = state._pk[4 * mid + field]
        if v < value:
            lo = mid + 1
        elif v > value:
            hi = mid
        else:
            return mid
    return -1


cdef inline Py_ssize_t _pending_index(SenderStateBase state, long long end) noexcept:
    """Index of the pending record whose end is ``end``, or -1 (none beyond the last
    one's end: most lookups stop there)."""
    if not state._pk_n or end > state._pend_end:
        return -1
    return _pending_find(state, end, 1)


# What _end_lookup returns for a pending record (its time in ``ts_out``).
cdef object _PENDING = object()


cdef object _end_lookup(SenderStateBase state, long long end, long long* ts_out):
    """``state.by_end.get(end)`` without completing the indexes: the pending FIN record or
    a pending record was inserted last, so it is the one the index would give; a pending
    record is answered as :data:`_PENDING`, its time in ``ts_out``."""
    cdef Py_ssize_t i
    if state._has_pending():
        fin = state._pend_fin
        if fin is not None and (<SentSegment?>fin).end == end:
            return fin
        i = _pending_index(state, end)
        if i >= 0:
            ts_out[0] = state._pk[4 * i + 3]
            return _PENDING
        return (<dict?>state._by_end_d).get(end)
    return _ends_of(state).get(end)


cdef SenderStateBase _new_sender_state(object cls, est):
    """``cls(est)`` for the engine's ``SenderState`` (:func:`_tp_new`)."""
    cdef SenderStateBase snd = <SenderStateBase?>_tp_new(cls)
    snd._init(est)
    return snd


@cython.final
cdef class _MadeRecords:
    """``make_mutable``'s ``conv``: the ``SentSegment`` standing for each record, one per
    tuple however many containers hold it. Keyed by the tuple's address in an
    open-addressing table of C pointers (the records themselves are held by the caller's
    containers throughout): a dict keyed by ``id()`` boxed three integers and made three
    lookups a record, ~250 k instructions for a sender's first retransmission on
    2m.pcap."""

    cdef PyObject** keys
    cdef PyObject** made
    cdef Py_ssize_t mask

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.made != NULL:
            for i in range(self.mask + 1):
                Py_XDECREF(self.made[i])
        PyMem_Free(self.keys)
        PyMem_Free(self.made)

    cdef int reserve(self, Py_ssize_t n) except -1:
        """Room for ``n`` records at most half full (call once, first)."""
        cdef Py_ssize_t cap = 16
        while cap < 2 * n:
            cap *= 2
        self.keys = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        self.made = <PyObject**>PyMem_Calloc(cap, sizeof(PyObject*))
        if self.keys == NULL or self.made == NULL:
            raise MemoryError()
        self.mask = cap - 1
        return 0

    cdef object of(self, object rec):
        """The ``SentSegment`` of the record ``rec`` (``rec`` itself when not a tuple),
        made at its first call and held by the table until it is freed: the same object
        for the same tuple. Call after :meth:`reserve` for at most that many."""
        if type(rec) is not tuple:
            return rec
        cdef size_t h = (<size_t><PyObject*>rec >> 4) * <size_t>0x9E3779B97F4A7C15ULL
        cdef Py_ssize_t slot = <Py_ssize_t>(h >> 20) & self.mask
        while self.keys[slot] != NULL:
            if self.keys[slot] == <PyObject*>rec:
                return <object>self.made[slot]
            slot = (slot + 1) & self.mask
        new = _sent_segment(<tuple>rec)
        Py_INCREF(new)
        self.keys[slot] = <PyObject*>rec  # borrowed: the caller's containers hold it
        self.made[slot] = <PyObject*>new
        return new


cdef SentSegment _sent_segment(tuple rec):
    """``SentSegment(start, end, frame, ts_ns, "")`` of a ``FreshSegment`` tuple."""
    if len(rec) != 4:
        raise ValueError("a FreshSegment record has 4 fields")
    return _fresh_sent_segment(rec[0], rec[1], rec[2], rec[3])


cdef SentSegment _fresh_sent_segment(long long start, long long end, object frame,
                                     object ts, object control=""):
    """``SentSegment(start, end, frame, ts, control)``, built without the constructor's
    argument parsing."""
    cdef SentSegment new = SentSegment.__new__(SentSegment)
    new.start = start
    new.end = end
    new.frame = frame
    new.ts_ns = ts
    new.last_ts_ns = ts
    new.tx = 1
    new.last_interval_ns = -1
    new.rexmit_index = -1
    new.control = control
    return new


cdef inline object _covered(object ranges):
    """``ranges.covered()``, in C for the engine's range sets."""
    if isinstance(ranges, RangeSetBase):
        return (<RangeSetBase>ranges).covered()
    return ranges.covered()


cdef inline int _set_column(object out, object key, object value) except -1:
    """``out[key] = value`` for a record dict, ``FlowRecord.line``'s writer or another
    mapping."""
    if type(out) is _JsonOut:
        return (<_JsonOut>out).put(key, value)
    if type(out) is dict:
        (<dict>out)[key] = value
    else:
        out[key] = value
    return 0


cdef enum:
    K_OBJ = 0  # _JsonOut slot kinds
    K_INT = 1
    K_DEC1 = 2
    K_DEC3 = 3
    K_NULL = 4  # None, True and False, classified when put: no reference held
    K_TRUE = 5
    K_FALSE = 6

# The marker a ``_JsonOut`` slot holding a C number points to (borrowed: never counted).
cdef object _TYPED = object()


cdef inline Py_ssize_t _dec_write(long long k, int digits, char* out) noexcept:
    """Write the decimal ``k / 10**digits`` (``0 <= k < 2**52``) at ``out`` as ``repr`` and
    orjson write its double (see ``_JsonOut.put_dec``): the integer part, a point, the
    fraction's digits without trailing zeros (one 0 when there are none); its length."""
    cdef long long scale = 1000 if digits == 3 else 10
    cdef long long frac = k % scale
    cdef Py_ssize_t n = _ll_write(k // scale, out)
    out[n] = b'.'
    n += 1
    if frac == 0:
        out[n] = b'0'
        return n + 1
    while frac % 10 == 0:
        frac //= 10
        digits -= 1
    cdef int i
    for i in range(digits - 1, -1, -1):
        out[n + i] = <char>(48 + frac % 10)
        frac //= 10
    return n + digits


cdef struct _Emit:
    # Where DirectionValues._columns puts each column: into the tuple ``tup`` (the values
    # the reference returns), or, when ``tup`` is NULL, into the line writer ``w`` under the
    # key of the same index in ``keys``: column i from ``lead`` on straight into slot
    # ``base + i`` when those keys are the schema's next ones (``_JsonOut.run_start``),
    # the others through ``put`` (``base`` -1: all). ``i`` is the next column's index.
    PyObject* tup
    PyObject* w
    PyObject* keys
    Py_ssize_t base
    Py_ssize_t lead
    Py_ssize_t i


cdef inline int _emit(_Emit* e, object v) except -1:
    """The next column: ``v``."""
    if e.tup is not NULL:
        Py_INCREF(v)
        PyTuple_SET_ITEM(<object>e.tup, e.i, v)
    elif e.base >= 0 and e.i >= e.lead:
        (<_JsonOut>e.w)._store(e.base + e.i, v)
    else:
        (<_JsonOut>e.w).put(<object>PyTuple_GET_ITEM(<object>e.keys, e.i), v)
    e.i += 1
    return 0


cdef inline int _emit_ll(_Emit* e, long long v) except -1:
    """The next column: the int ``v`` (to the writer as a C integer)."""
    if e.tup is not NULL:
        return _emit(e, v)
    if e.base >= 0 and e.i >= e.lead:
        (<_JsonOut>e.w)._store_number(e.base + e.i, K_INT, v)
    else:
        (<_JsonOut>e.w).put_ll(<object>PyTuple_GET_ITEM(<object>e.keys, e.i), v)
    e.i += 1
    return 0


cdef inline int _emit_round(_Emit* e, bint present, double x, double scale,
                            int digits) except -1:
    """The next column: ``_round_d(x, scale, digits)``, or None unless ``present`` (to the
    writer as its decimal where the rounding was exact, see ``_JsonOut.put_dec``)."""
    cdef long long k = 0
    if not present:
        return _emit(e, None)
    # +0.0 (which _round_d gives back, and _round_k leaves k at 0 for) is the decimal 0
    if e.tup is NULL and (_round_k(x, scale, &k) or (x == 0.0 and not signbit(x))):
        if e.base >= 0 and e.i >= e.lead:
            (<_JsonOut>e.w)._store_number(e.base + e.i, K_DEC3 if digits == 3 else K_DEC1, k)
        else:
            (<_JsonOut>e.w).put_dec(<object>PyTuple_GET_ITEM(<object>e.keys, e.i), k, digits)
        e.i += 1
        return 0
    return _emit(e, _round_d(x, scale, digits))


# The columns of one direction: ``len(analysis.sequence.DIRECTION_COLUMNS)``.
cdef Py_ssize_t N_DIRECTION_COLUMNS = 69


cdef class DirectionValues:
    """Twin of ``analysis.sequence._direction_values``: one direction's record columns,
    read from the C fields of ``DirectionStatsBase`` and its running statistics. Counts
    whose quotients a double could not hold exactly (2**52 bytes and up) take the
    reference, given at construction."""

    cdef object reference

    def __init__(self, reference):
        self.reference = reference

    def __call__(self, st_obj, state_obj, duration_ns):
        return self._values(st_obj, state_obj, duration_ns)

    def put(self, out, tuple keys, st_obj, state_obj, duration_ns):
        """Twin of ``analysis.sequence._put_direction_values``: the values set straight
        into the record under ``keys`` (``dict.update`` of zipped pairs made a tuple per
        column and cost three times as much), or written by ``FlowRecord.line``'s writer."""
        self._put_c(out, keys, st_obj, state_obj, duration_ns)

    cdef int _put_c(self, out, tuple keys, st_obj, state_obj, duration_ns) except -1:
        cdef Py_ssize_t i, n = len(keys)
        cdef dict d
        cdef _Emit e
        if n != N_DIRECTION_COLUMNS:
            raise ValueError("direction columns and values differ in length")
        if type(out) is _JsonOut and self._exact(st_obj):
            # Straight into the writer: counts as C integers, rounded figures as decimals,
            # no tuple and no number object in between.
            e.tup = NULL
            e.w = <PyObject*>out
            e.keys = <PyObject*>keys
            e.base = (<_JsonOut>out).run_start(keys, &e.lead)
            e.i = 0
            return self._columns(<DirectionStatsBase>st_obj, state_obj, duration_ns, &e)
        cdef tuple values = <tuple?>self._values(st_obj, state_obj, duration_ns)
        if len(values) != n:
            raise ValueError("direction columns and values differ in length")
        if type(out) is dict:
            d = <dict>out
            for i in range(n):
                d[keys[i]] = values[i]
        elif type(out) is _JsonOut:
            for i in range(n):
                (<_JsonOut>out).put(keys[i], values[i])
        else:
            for i in range(n):
                out[keys[i]] = values[i]
        return 0

    cdef bint _exact(self, st_obj) except -1:
        """Whether the byte and window sums' quotients are exact doubles (else the
        reference computes the columns)."""
        cdef DirectionStatsBase st = <DirectionStatsBase?>st_obj
        return -EXACT_BELOW < st.data_bytes < EXACT_BELOW \
            and -EXACT_BELOW < st.win_sum < EXACT_BELOW

    cdef object _values(self, st_obj, state_obj, duration_ns):
        if not self._exact(st_obj):
            return self.reference(st_obj, state_obj, duration_ns)
        values = PyTuple_New(N_DIRECTION_COLUMNS)
        cdef _Emit e
        e.tup = <PyObject*>values
        e.w = NULL
        e.keys = NULL
        e.base = -1
        e.lead = 0
        e.i = 0
        self._columns(<DirectionStatsBase>st_obj, state_obj, duration_ns, &e)
        return values

    cdef int _columns(self, DirectionStatsBase st, state_obj, duration_ns,
                      _Emit* e) except -1:
        """The reference's columns, in its order, to ``e`` (exactly N_DIRECTION_COLUMNS)."""
        cdef RttEstimatorBase est = <RttEstimatorBase?>(<SenderStateBase?>state_obj).est
        cdef RunningStatsBase rtt = <RunningStatsBase?>st.rtt
        cdef RunningStatsBase rxi = <RunningStatsBase?>st.rexmit_interval
        cdef RunningStatsBase bor = <RunningStatsBase?>st.backoff_ratio
        cdef long long packets = st.packets
        cdef long long data_pkts = st.data_pkts
        cdef long long seg_max = st.seg_max
        cdef long long win_n = st.win_n
        cdef long long rtt_n = rtt.count
        cdef long long rxi_n = rxi.count
        cdef double idle_max
        hs_ns = st.handshake_rtt_ns
        # The estimator's C fields, not its properties (each boxed a float that was then
        # read back as a double: ~650 instructions a direction).
        cdef bint has_srtt = est._has_srtt, has_rttvar = est._has_rttvar
        _emit_ll(e, packets)  # packets
        _emit_ll(e, st.ack_pkts)  # ack_pkts
        _emit_ll(e, st.pure_acks)  # pure_acks
        _emit(e, st.rst_pkts)  # rst_pkts
        _emit_ll(e, data_pkts)  # data_pkts
        _emit_ll(e, st.data_bytes)  # data_bytes
        _emit(e, st.unique_bytes)  # unique_bytes
        _emit(e, st.retransmitted_segments)  # retransmitted_segments
        _emit(e, st.rexmt_data_pkts)  # rexmt_data_pkts
        _emit(e, st.rexmt_data_bytes)  # rexmt_data_bytes
        _emit(e, st.syn_pkts)  # syn_pkts
        _emit(e, st.fin_pkts)  # fin_pkts
        _emit(e, st.syn_rexmt)  # syn_retransmissions
        _emit(e, st.fin_rexmt)  # fin_retransmissions
        _emit(e, st.rexmt_rto)  # rto_retransmissions
        _emit(e, st.rexmt_fast)  # fast_retransmissions
        _emit(e, st.rexmt_tlp)  # tail_loss_probes
        _emit(e, st.rexmt_spurious)  # spurious_retransmissions
        _emit(e, st.ooo_pkts)  # out_of_order_pkts
        _emit(e, st.lost_segments)  # lost_segments
        _emit(e, st.missed_bytes)  # missed_bytes
        _emit(e, st.acks_unseen)  # acks_of_unseen_data
        _emit(e, st.dup_acks)  # dup_acks
        _emit(e, st.triple_dup_acks)  # triple_dup_acks
        _emit(e, st.sack_pkts)  # sack_pkts
        _emit(e, st.dsack_pkts)  # dsack_pkts
        _emit(e, st.max_sack_blocks)  # max_sack_blocks
        _emit(e, st.zero_window_advs)  # zero_window_advs
        _emit(e, st.zwp_pkts)  # zero_window_probes
        _emit(e, st.zwp_bytes)  # zero_window_probe_bytes
        _emit(e, st.zwp_acks)  # zero_window_probe_acks
        _emit(e, st.keepalives)  # keepalives
        _emit(e, st.keepalive_acks)  # keepalive_acks
        _emit(e, st.window_updates)  # window_updates
        _emit(e, st.window_full)  # window_full
        _emit_ll(e, st.pushed_pkts)  # pushed_pkts
        _emit_ll(e, st.mss)  # mss_bytes
        _emit(e, st.wscale)  # window_scale
        _emit(e, st.sack_permitted)  # sack_permitted
        _emit(e, st.timestamps)  # timestamps
        _emit_ll(e, st.iw_bytes)  # initial_window_bytes
        _emit_ll(e, st.iw_pkts)  # initial_window_pkts
        if seg_max:
            _emit_ll(e, st.seg_min)  # segment_min_bytes
            _emit_ll(e, seg_max)  # segment_max_bytes
        else:
            _emit(e, None)
            _emit(e, None)
        # The reference's rounded columns; a RunningStats mean is 0.0 without samples and
        # its stdev needs two (rtt.RunningStats.mean/stdev). A quotient is only computed
        # where it is a column.
        _emit_round(e, data_pkts != 0,
                    <double>st.data_bytes / <double>data_pkts if data_pkts else 0.0,
                    10.0, 1)  # segment_avg_bytes
        if win_n:
            _emit_ll(e, st.win_min)  # window_min_bytes
            _emit_ll(e, st.win_max)  # window_max_bytes
        else:
            _emit(e, None)
            _emit(e, None)
        _emit_round(e, win_n != 0, <double>st.win_sum / <double>win_n if win_n else 0.0,
                    10.0, 1)  # window_avg_bytes
        idle_max = (<double>st.idle_max_c if st.idle_max_o is None
                    else <double>st.idle_max_o)
        _emit_round(e, packets > 1, idle_max / 1e6 if packets > 1 else 0.0,
                    1000.0, 3)  # idle_max_ms
        _emit_round(e, duration_ns > 0,
                    <double>st.unique_bytes * 1e9 / <double>duration_ns
                    if duration_ns > 0 else 0.0, 10.0, 1)  # throughput
        _emit(e, st.truncated_bytes)  # truncated_bytes
        _emit(e, st.truncated_pkts)  # truncated_pkts
        _emit_ll(e, st.tso_pkts)  # tso_supersegments
        _emit_ll(e, rtt_n)  # rtt_samples
        _emit(e, st.ambiguous_acks)  # rtt_ambiguous_acks
        _emit_round(e, rtt_n != 0, rtt.min / 1e6, 1000.0, 3)  # rtt_min_ms
        _emit_round(e, rtt_n != 0, rtt._mean / 1e6, 1000.0, 3)  # rtt_avg_ms
        _emit_round(e, rtt_n != 0, rtt.max / 1e6, 1000.0, 3)  # rtt_max_ms
        _emit_round(e, rtt_n > 1,
                    sqrt(rtt._m2 / <double>(rtt_n - 1)) / 1e6 if rtt_n > 1 else 0.0,
                    1000.0, 3)  # rtt_stdev_ms
        _emit_round(e, hs_ns >= 0, <double>hs_ns / 1e6 if hs_ns >= 0 else 0.0,
                    1000.0, 3)  # handshake_rtt_ms
        _emit_round(e, has_srtt, est._srtt / 1e6 if has_srtt else 0.0,
                    1000.0, 3)  # srtt_ms
        _emit_round(e, has_rttvar, est._rttvar / 1e6 if has_rttvar else 0.0,
                    1000.0, 3)  # rttvar_ms
        _emit_round(e, True, est.rto_ns / 1e6, 1000.0, 3)  # rto_ms
        _emit_round(e, rxi_n != 0, rxi.min / 1e6, 1000.0, 3)  # rexmit_interval_min_ms
        _emit_round(e, rxi_n != 0, rxi.max / 1e6, 1000.0, 3)  # rexmit_interval_max_ms
        _emit_round(e, rxi_n != 0, rxi._mean / 1e6, 1000.0, 3)  # rexmit_interval_avg_ms
        _emit_round(e, bor.count != 0, bor._mean, 1000.0, 3)  # rto_backoff_ratio_avg
        _emit_ll(e, st.isn)  # isn
        _emit(e, st.midstream)  # midstream
        if e.i != N_DIRECTION_COLUMNS:
            raise AssertionError("DirectionValues wrote the wrong number of columns")
        return 0


cdef enum:
    COMPACT_TAIL = 2  # analysis.sequence.COMPACT_TAIL_SEGMENTS


cdef inline long long _record_end(object rec) except? -1:
    """Twin of ``direction.record_end``."""
    if type(rec) is tuple:
        return (<tuple>rec)[1]
    return (<SentSegment?>rec).end


cdef class _Identities  # defined after SequenceAnalyzerBase


cdef class _ValuesOf:
    """Values read once from a frozen options object (``Options``, ``AnalysisOptions``),
    kept while that object, the key, is the one asked for (:func:`_values_of`). Why: each
    read through Python's attribute lookup costs ~150-300 instructions, and a connection
    made ~30 of them and two or three on each of its full-path segments."""

    cdef object key  # the options object the values were read from

    cdef int _read(self, object options) except -1:
        return 0


cdef _ValuesOf _values_of(_ValuesOf last, type cls, object key):
    """``last`` if it was read from ``key``, else ``key``'s values read into a new ``cls``."""
    if last is not None and last.key is key:
        return last
    cdef _ValuesOf v = <_ValuesOf>cls.__new__(cls)
    v.key = key
    v._read(key)
    return v


cdef class _AnalysisValues(_ValuesOf):
    """The ``AnalysisOptions`` values a new connection and its analyzer read."""

    cdef object rto_initial_ns
    cdef object rto_min_ns
    cdef object rto_max_ns
    cdef object clock_granularity_ns
    cdef object dup_ack_threshold
    cdef object max_unacked_segments
    cdef object max_tracked_segments
    cdef object max_holes
    cdef object max_evidence_items

    cdef int _read(self, object analysis) except -1:
        self.rto_initial_ns = analysis.rto_initial_ns
        self.rto_min_ns = analysis.rto_min_ns
        self.rto_max_ns = analysis.rto_max_ns
        self.clock_granularity_ns = analysis.clock_granularity_ns
        self.dup_ack_threshold = analysis.dup_ack_threshold
        self.max_unacked_segments = analysis.max_unacked_segments
        self.max_tracked_segments = analysis.max_tracked_segments
        self.max_holes = analysis.max_holes
        self.max_evidence_items = analysis.max_evidence_items
        return 0


cdef class _OptionValues(_ValuesOf):
    """The ``Options`` values a connection reads per segment or per connection."""

    cdef _AnalysisValues analysis
    cdef object max_events_per_connection
    cdef bint keep_packets
    cdef object packet_flows
    cdef Py_ssize_t dup_n
    cdef object fast_path
    cdef object closed_linger_ns
    cdef object idle_timeout_ns
    cdef object attempt_timeout_ns
    cdef object time_wait_ns
    cdef object duplicate_weak_max_interval_ns
    cdef object duplicate_syn_max_interval_ns
    # The four deadline options as C integers (``deadlines_c``: all four are ints within
    # [0, 2**62), so a time within +-2**62 plus any of them fits a C integer exactly).
    cdef bint deadlines_c
    cdef long long closed_linger_c
    cdef long long idle_timeout_c
    cdef long long attempt_timeout_c
    cdef long long time_wait_c

    cdef int _read(self, object options) except -1:
        self.analysis = _analysis_of(options.analysis)
        self.max_events_per_connection = options.max_events_per_connection
        self.keep_packets = bool(options.keep_packets)
        self.packet_flows = options.packet_flows
        self.dup_n = max(1, options.duplicate_memory_segments)
        self.fast_path = options.fast_path
        self.closed_linger_ns = options.closed_linger_ns
        self.idle_timeout_ns = options.idle_timeout_ns
        self.attempt_timeout_ns = options.attempt_timeout_ns
        self.time_wait_ns = options.time_wait_ns
        self.duplicate_weak_max_interval_ns = options.duplicate_weak_max_interval_ns
        self.duplicate_syn_max_interval_ns = options.duplicate_syn_max_interval_ns
        self.deadlines_c = (
            _deadline_option(self.closed_linger_ns, &self.closed_linger_c)
            and _deadline_option(self.idle_timeout_ns, &self.idle_timeout_c)
            and _deadline_option(self.attempt_timeout_ns, &self.attempt_timeout_c)
            and _deadline_option(self.time_wait_ns, &self.time_wait_c))
        return 0


cdef inline bint _deadline_option(object value, long long* out) noexcept:
    """A deadline option as a C integer within [0, 2**62) (see ``_OptionValues``)."""
    return _as_ll(value, out) and 0 <= out[0] < _C_TIME_LIMIT


# The last options objects asked for (a run has one of each).
cdef _AnalysisValues _last_analysis = None
cdef _OptionValues _last_options = None


cdef _AnalysisValues _analysis_of(object analysis):
    global _last_analysis
    _last_analysis = <_AnalysisValues>_values_of(_last_analysis, _AnalysisValues, analysis)
    return _last_analysis


cdef _OptionValues _options_of(object options):
    global _last_options
    _last_options = <_OptionValues>_values_of(_last_options, _OptionValues, options)
    return _last_options


cdef int _end_zw_period(object periods, Py_ssize_t index, object make, object frame,
                        object ts) except -1:
    """``SequenceAnalyzer._amend`` of the open zero-window period ``periods[index]``: ended
    at ``frame`` and ``ts``. A function, not the reference's lambda: a closure in
    ``_on_segment_c`` gave every call of that function a heap-allocated scope for the
    variables it captured (the segment and its time, then read through the scope)."""
    if type(periods) is list and 0 <= index < len(<list>periods):
        p = (<list>periods)[index]
        (<list>periods)[index] = make(p.side, p.start_frame, p.start_ts_ns, frame, ts,
                                      p.probes)
    return 0


cdef class SequenceAnalyzerBase:
    """The steady path's fields of ``analysis.sequence.SequenceAnalyzer``, and the twin of
    its compaction (a loop over every segment a connection sent, once per closed
    connection)."""

    cdef public object client
    cdef public object server
    cdef public object _c
    cdef public object _s
    cdef long long last_ts_c
    cdef object last_ts_o
    """``last_ts_ns`` as a pair of fields (see :func:`_split_int`)."""
    cdef public object options
    cdef public object first_ts_ns
    cdef object _max_unacked_obj
    cdef long long _max_unacked_c  # _max_unacked when an exact int within +-2**62, else -1
    cdef long long _max_tracked  # options.max_tracked_segments (frozen options), read per ACK
    cdef public object zero_window_periods
    cdef public object window_full_events
    cdef public object retransmissions
    cdef public object zero_window_probes
    cdef public object keepalives
    cdef public object evidence_dropped
    cdef public object _both_syn_ws
    cdef public object _thresh

    @property
    def last_ts_ns(self):
        return _joined(self.last_ts_c, self.last_ts_o)

    @last_ts_ns.setter
    def last_ts_ns(self, value):
        self.last_ts_o = _split_int(value, &self.last_ts_c)

    def __init__(self, options=None):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init(options)

    cdef int _init(self, options) except -1:
        """Twin of ``SequenceAnalyzer.__init__``."""
        cdef _Refs c = _refs()
        self.options = options if options is not None else c.analysis_options()
        cdef _AnalysisValues o = _analysis_of(self.options)
        self.client = _new_direction_stats(c.direction_stats)
        self.server = _new_direction_stats(c.direction_stats)
        self._c = _new_sender_state(c.sender_state, _estimator(c, o))
        self._s = _new_sender_state(c.sender_state, _estimator(c, o))
        self.retransmissions = _EMPTY  # analysis.evidence.NONE_YET
        self.zero_window_periods = _EMPTY  # analysis.evidence.NONE_YET
        self.zero_window_probes = _EMPTY  # analysis.evidence.NONE_YET
        self.keepalives = _EMPTY  # analysis.evidence.NONE_YET
        self.window_full_events = _EMPTY  # analysis.evidence.NONE_YET
        self.evidence_dropped = c.no_drops  # analysis.sequence.NO_DROPS
        self.first_ts_ns = -1
        self.last_ts_c = -1
        self.last_ts_o = None
        self._both_syn_ws = False
        self._thresh = o.dup_ack_threshold
        self._set_max_unacked(o.max_unacked_segments)
        self._max_tracked = o.max_tracked_segments
        return 0

    @property
    def _max_unacked(self):
        """``options.max_unacked_segments``, held with a C copy for the per-segment test."""
        return self._max_unacked_obj

    @_max_unacked.setter
    def _max_unacked(self, value):
        self._set_max_unacked(value)

    cdef int _set_max_unacked(self, object value) except -1:
        self._max_unacked_obj = value
        if not _time_c(value, &self._max_unacked_c) or self._max_unacked_c < 0:
            self._max_unacked_c = -1
        return 0

    def on_segment(self, seg_obj, from_client):
        """Twin of ``SequenceAnalyzer.on_segment``: the frame and its inlined common
        branches (the ACK of nothing new, the ACK of new data sent once, window accounting,
        in-order data); every other rule is the reference's method, called as it does."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__.on_segment(self, seg_obj, from_client)
        return self._on_segment_c(<Segment>seg_obj, from_client)

    cdef object _on_segment_c(self, Segment seg, object from_client):
        """:meth:`on_segment` for a compiled segment (the connection's full path calls it
        directly)."""
        cdef _Refs r = _refs()
        cdef SenderStateBase snd, rcv
        cdef DirectionStatsBase st, rst_
        if from_client:
            snd = <SenderStateBase>_as(self._c, SenderStateBase)
            rcv = <SenderStateBase>_as(self._s, SenderStateBase)
            st = <DirectionStatsBase>_as(self.client, DirectionStatsBase)
            rst_ = <DirectionStatsBase>_as(self.server, DirectionStatsBase)
        else:
            snd = <SenderStateBase>_as(self._s, SenderStateBase)
            rcv = <SenderStateBase>_as(self._c, SenderStateBase)
            st = <DirectionStatsBase>_as(self.server, DirectionStatsBase)
            rst_ = <DirectionStatsBase>_as(self.client, DirectionStatsBase)
        cdef long long ts_c = seg.ts_c
        ts_o = seg.ts_o
        ts = _seg_ts(seg)
        cdef long long fl = seg.flags
        cdef long long plen = seg.payload_len
        cdef long long mask = 0
        cdef long long pend_ts = 0
        cdef _SackBlocks sack_blocks
        st.packets += 1
        if self.first_ts_ns < 0:
            self.first_ts_ns = ts
        self.last_ts_c, self.last_ts_o = ts_c, ts_o
        # The idle gap: a C integer (``idle_c``) while both times are, boxed as ``idle_ns``
        # only where a Python call takes it (None until then).
        cdef long long idle_c = 0
        idle_ns = None
        if (snd.last_ts_c >= 0 if snd.last_ts_o is None else snd.last_ts_o >= 0):
            if ts_o is None and snd.last_ts_o is None:
                idle_c = ts_c - snd.last_ts_c  # both within +-2**62: exact
                if st.idle_max_o is None and -_C_TIME_LIMIT < idle_c < _C_TIME_LIMIT:
                    if idle_c > st.idle_max_c:
                        st.idle_max_c = idle_c  # what _split_int keeps of it
                else:
                    idle_ns = idle_c
            else:
                idle_ns = ts - _joined(snd.last_ts_c, snd.last_ts_o)
            if idle_ns is not None and idle_ns > _joined(st.idle_max_c, st.idle_max_o):
                st.idle_max_o = _split_int(idle_ns, &st.idle_max_c)
        else:
            st.first_ts_ns = ts
        snd.last_ts_c, snd.last_ts_o = ts_c, ts_o
        st.last_ts_c, st.last_ts_o = ts_c, ts_o

        if fl & SYN:
            self._on_syn_c(seg, snd, rcv, st)
        elif snd.base < 0:
            snd.base = (seg.seq - 1) & _MASK
            snd.snd_nxt = snd.snd_una = 1
            st.midstream = True

        # ---- ACK side
        cdef long long ack, base, nxt, una, ack_rel
        if fl & ACK_BIT:
            st.ack_pkts += 1
            ack = seg.ack
            base = rcv.base
            nxt = rcv.snd_nxt
            una = rcv.snd_una
            ack_rel = nxt + ((ack - base - nxt + _HALF) & _MASK) - _HALF
            if (base >= 0 and una <= nxt and not snd.pending_ack and _no_sack(seg)
                    and ack_rel == una
                    and (plen or fl & (SYN | FIN | RST_BIT) or ack != snd.last_ack_raw
                         or not snd.last_sent_ack)):
                snd.last_ack_raw = ack
                snd.last_win_raw = seg.window
                snd.last_sent_ack = True
            elif (base >= 0 and una < ack_rel <= nxt
                  and not snd.pending_ack and _no_sack(seg) and ack_rel <= rcv.late_low):
                rec = _end_lookup(rcv, ack_rel, &pend_ts)
                if isinstance(rec, SentSegment):
                    mask |= _ack_sent_segment(self, snd, rcv, rst_, ack_rel, ts,
                                              <SentSegment>rec)
                elif rec is _PENDING:
                    mask |= _ack_new_data(self, snd, rcv, rst_, ack_rel, ts, pend_ts)
                else:
                    mask |= _ack_new_data(self, snd, rcv, rst_, ack_rel, ts,
                                          None if rec is None else rec[3])
                snd.last_ack_raw = ack
                snd.last_win_raw = seg.window
                snd.last_sent_ack = True
            elif (base >= 0 and ack_rel == una and una <= nxt and not snd.pending_ack
                  and _sack_blocks_c(seg.sack, &sack_blocks)):
                mask |= _ack_at_una(self, seg, snd, rcv, st, ack_rel, nxt, plen, fl,
                                    &sack_blocks)
            else:
                mask |= <long long>self._on_ack(seg, snd, rcv, st, rst_, plen, fl, ts)
        cdef long long win
        if fl & RST_BIT:
            st.rst_pkts += 1
        elif seg.window >= 0:
            win = seg.window
            if not fl & SYN:
                win <<= snd.shift
            _window_stats(st, win)
            if win == 0 and not fl & (SYN | FIN | RST_BIT):
                mask |= r.zero_window
                st.zero_window_advs += 1
                if snd.zw_open_index < 0:
                    snd.zw_open_index = self._keep(
                        "zero_window_periods", self.zero_window_periods,
                        r.zero_window_period("client" if from_client else "server",
                                             _seg_frame(seg), ts, -1, -1, 0))
                    if snd.zw_open_index < 0:
                        snd.zw_open_index = -2
            elif win > 0 and snd.zw_open_index != -1:
                if snd.zw_open_index >= 0:
                    _end_zw_period(self.zero_window_periods, snd.zw_open_index,
                                   r.zero_window_period, _seg_frame(seg), ts)
                snd.zw_open_index = -1
            snd.win_scaled = win
            snd.win_known = True

        # ---- sequence side
        nxt = snd.snd_nxt
        cdef long long end, rwin, rel
        if (plen > 1 and not fl & (SYN | FIN | RST_BIT)
                and nxt + ((seg.seq - snd.base - nxt + _HALF) & _MASK) - _HALF == nxt):
            end = nxt + plen
            mask |= _in_order_data(self, snd, st, rst_, nxt, plen, fl, seg)
            rwin = rcv.win_scaled
            if rwin and rcv.win_known and end == snd.snd_una + rwin:
                mask |= r.window_full
                st.window_full += 1
                self._keep("window_full_events", self.window_full_events,
                           r.window_full_event(_seg_frame(seg), ts,
                                               "client" if from_client else "server",
                                               nxt, rwin))
            snd.snd_nxt = end
        elif plen or fl & (FIN | SYN):
            if fl & RST_BIT:
                pass
            elif not plen and fl & (SYN | FIN) == SYN and _no_record(snd, 1) \
                    and snd.base >= 0:
                _first_syn_sent(snd, seg, fl, ts)
            elif (not plen and fl & (SYN | FIN) == FIN and _no_record(snd, 2)
                  and snd.base >= 0
                  and nxt + ((seg.seq - snd.base - nxt + _HALF) & _MASK) - _HALF == nxt):
                st.fin_pkts += 1
                _first_fin_sent(snd, seg, nxt, ts)
            else:
                mask |= <long long>self._on_data(seg, snd, rcv, st, plen, fl, ts, from_client,
                                                 idle_c if idle_ns is None else idle_ns)
        elif not fl & RST_BIT and snd.base >= 0:
            rel = snd.snd_nxt + ((seg.seq - snd.base - snd.snd_nxt + _HALF) & _MASK) - _HALF
            if rel == snd.snd_una - 1 and rcv.win_known and rcv.win_scaled == 0:
                mask |= <long long>self._zw_probe(seg, snd, rcv, st, rel, "linux_zero_byte",
                                                  from_client)
            elif (rel == snd.snd_nxt - 1 and snd.snd_una >= snd.snd_nxt
                  and (idle_c if idle_ns is None else idle_ns)
                  >= self.options.keepalive_min_idle_ns):
                mask |= <long long>self._keepalive(seg, snd, rcv, st, rel, from_client,
                                                   idle_c if idle_ns is None else idle_ns)
            else:
                st.pure_acks += 1 if fl & ACK_BIT else 0

        if seg.captured_payload < plen or seg.header_truncated:
            mask |= r.truncated
            _count_truncated(st, seg, plen)
        return mask

    cdef int _on_syn_c(self, Segment seg, SenderStateBase snd, SenderStateBase rcv,
                       DirectionStatsBase st) except -1:
        """Twin of ``SequenceAnalyzer._on_syn``: a SYN or SYN-ACK's counts, the sender's
        relative sequence base, its options, and window scaling once both SYNs are seen
        (RFC 7323 section 2.2)."""
        st.syn_pkts += 1
        if snd.syn_seen:
            return 0  # repeat: classified in _on_data
        snd.syn_seen = True
        if snd.base < 0 or snd.snd_nxt <= 1:
            snd.base = seg.seq
            snd.snd_nxt = 1
            snd.snd_una = 0
        st.isn = seg.seq
        st.mss = seg.mss
        st.wscale = seg.wscale
        st.sack_permitted = seg.sack_permitted
        st.timestamps = seg.tsval >= 0
        if rcv.syn_seen:
            peer = self.client if st is self.server else self.server
            if seg.wscale >= 0 and peer.wscale >= 0:
                snd.shift = min(seg.wscale, 14)
                rcv.shift = min(peer.wscale, 14)
                self._both_syn_ws = True
        return 0

    @staticmethod
    def _prune(state_obj):
        """Twin of ``SequenceAnalyzer._prune`` (see :func:`_prune_c`)."""
        _prune_c(<SenderStateBase?>state_obj)

    @staticmethod
    def _compact_sender(state_obj):
        """Twin of ``SequenceAnalyzer._compact_sender`` (:func:`_compact_sender_c`)."""
        return _compact_sender_c(state_obj)

    @property
    def tracking_capped(self):
        """Twin of ``analysis.sequence.SequenceAnalyzer.tracking_capped`` (the engine
        reads it for every connection: a Python property cost ~900 instructions)."""
        dropped = self.evidence_dropped
        if dropped is _refs().no_drops:
            return 0
        return dropped.get("unacked_segments", 0) + dropped.get("sequence_holes", 0)

    def add_columns(self, out):
        """Twin of ``SequenceAnalyzer.add_columns``: the same columns in the same order
        into the record ``out`` (a dict, ``FlowRecord.line``'s writer or another mapping),
        without the Python calls between them (``_finish``, ``retransmission_total``,
        ``_put_direction_values``, ``sum``): ~7 k instructions a record."""
        self._add_columns_c(out)

    cdef int _add_columns_c(self, out) except -1:
        cdef _Refs r = _refs()
        cdef DirectionStatsBase cl = <DirectionStatsBase?>self.client
        cdef DirectionStatsBase sv = <DirectionStatsBase?>self.server
        cdef SenderStateBase c = <SenderStateBase?>self._c
        cdef SenderStateBase s = <SenderStateBase?>self._s
        cdef DirectionValues values = <DirectionValues?>r.direction_values
        cl.unique_bytes = _covered(c.ranges) - c.filled_bytes  # _finish
        sv.unique_bytes = _covered(s.ranges) - s.filled_bytes
        _set_column(out, "retransmissions", cl.retransmitted_segments + sv.retransmitted_segments)
        first = self.first_ts_ns
        duration_ns = (_joined(self.last_ts_c, self.last_ts_o) - first) if first >= 0 else 0
        values._put_c(out, r.prefixed_client, cl, c, duration_ns)
        values._put_c(out, r.prefixed_server, sv, s, duration_ns)
        _set_column(out, "window_scaling", self._both_syn_ws)
        dropped = self.evidence_dropped
        if dropped is r.no_drops:  # the shared empty mapping: sum() of no values
            _set_column(out, "evidence_dropped", 0)
        else:
            _set_column(out, "evidence_dropped", sum(dropped.values()))
        return 0

    def compact(self):
        """Twin of ``SequenceAnalyzer.compact``: both directions through
        :func:`_compact_sender_c`, without two Python method calls."""
        return self._compact_c()

    cdef Py_ssize_t _compact_c(self) except -1:
        return _compact_sender_c(self._c) + _compact_sender_c(self._s)


cdef bint _pending_clashes(SenderStateBase state) except -1:
    """Whether an index already holds a key of a pending record (or of the pending FIN
    record): then :func:`_compact_sender_c` puts them in first (rare: the keys of
    in-order data are new)."""
    cdef int overflow
    cdef long long kv, first_start = LLONG_MAX, first_end = LLONG_MAX
    if state._pk_n:
        first_start = state._pk[0]
        first_end = state._pk[1]
    fin = state._pend_fin
    if fin is not None and (<SentSegment?>fin).end < first_end:
        first_end = (<SentSegment>fin).end
    for k in <dict?>state._by_end_d:
        kv = PyLong_AsLongLongAndOverflow(k, &overflow)
        if overflow > 0 or (overflow == 0 and kv >= first_end):
            return True
    for k in <dict?>state._by_start_d:
        kv = PyLong_AsLongLongAndOverflow(k, &overflow)
        if overflow > 0 or (overflow == 0 and kv >= first_start):
            return True
    return False


cdef inline void _tail_insert(long long* tail_end, PyObject** tail_rec, Py_ssize_t* tail_pk,
                              Py_ssize_t* n_tail, long long end, PyObject* rec,
                              Py_ssize_t pk) noexcept:
    """Rank a record among the last ``COMPACT_TAIL`` by (end, position): ascending, a
    later record above every earlier one with the same end."""
    cdef Py_ssize_t j
    if n_tail[0] < COMPACT_TAIL:
        j = n_tail[0]
        n_tail[0] += 1
    elif end >= tail_end[0]:
        j = 0
        while j + 1 < COMPACT_TAIL and tail_end[j + 1] <= end:
            tail_end[j] = tail_end[j + 1]
            tail_rec[j] = tail_rec[j + 1]
            tail_pk[j] = tail_pk[j + 1]
            j += 1
        tail_end[j] = end
        tail_rec[j] = rec
        tail_pk[j] = pk
        return
    else:
        return
    while j > 0 and tail_end[j - 1] > end:
        tail_end[j] = tail_end[j - 1]
        tail_rec[j] = tail_rec[j - 1]
        tail_pk[j] = tail_pk[j - 1]
        j -= 1
    tail_end[j] = end
    tail_rec[j] = rec
    tail_pk[j] = pk


cdef Py_ssize_t _compact_sender_c(object state_obj) except -1:
    """Twin of ``SequenceAnalyzer._compact_sender``: the same records kept, the same
    fresh containers, the same count. The tail is the last ``COMPACT_TAIL`` records of
    ``sorted(order, key=record_end)`` (stable: among equal ends the later ones), found
    in one pass instead of a sort; kept records are compared by identity, as the
    reference's ``id()`` set does. Pending records (:meth:`SenderStateBase._flush`) come
    after ``order`` and after the indexes' entries; only those kept are made."""
    cdef SenderStateBase state = <SenderStateBase?>state_obj
    if state._tail_n >= 0:
        state._unpack()
    if state._has_pending() and _pending_clashes(state):
        state._flush()
    order = state._order
    cdef Py_ssize_t n_pk = state._pk_n, p
    cdef long long una = state.snd_una
    cdef Py_ssize_t tracked = (len(order) if order is not None else 0) + n_pk
    cdef Py_ssize_t n_tail_pk
    if not order and _keeps_nothing(state, una):
        # What the general path below ends with, without its containers: no record and no
        # index entry kept, the last pending records packed as the tail (a closed
        # connection's sender, most of them: ~1.6 k instructions less a connection).
        n_tail_pk = n_pk if n_pk < COMPACT_TAIL else COMPACT_TAIL
        _pack_pending_tail(state, n_pk - n_tail_pk, n_tail_pk)
        return tracked - n_tail_pk
    cdef list keep = []
    cdef _Identities kept = _Identities()
    # tail_end/tail_rec ascending by (end, position); borrowed references (``order``
    # holds the records until the end of this call); tail_pk: a pending record's index
    # (its tail_rec NULL), else -1.
    cdef long long tail_end[COMPACT_TAIL]
    cdef PyObject* tail_rec[COMPACT_TAIL]
    cdef Py_ssize_t tail_pk[COMPACT_TAIL]
    cdef Py_ssize_t n_tail = 0, j
    cdef long long end
    if order:
        for rec in order:
            end = _record_end(rec)
            if end > una or (type(rec) is not tuple
                             and (<SentSegment?>rec).rexmit_index >= 0):
                keep.append(rec)
                kept.add(rec)
            _tail_insert(tail_end, tail_rec, tail_pk, &n_tail, end, <PyObject*>rec, -1)
    # The pending records kept are a suffix of them: their ends increase, so the
    # unacknowledged ones come last, and so do the ones among the tail (a later pending
    # record ranks above an earlier one). Only those are made.
    cdef Py_ssize_t first_made = n_pk
    for p in range(n_pk):
        end = state._pk[4 * p + 1]
        if end > una and p < first_made:
            first_made = p
        _tail_insert(tail_end, tail_rec, tail_pk, &n_tail, end, NULL, p)
    for j in range(n_tail):
        if tail_pk[j] < 0:
            kept.add(<object>tail_rec[j])
        elif tail_pk[j] < first_made:
            first_made = tail_pk[j]
    # The entries the indexes keep of their own (kept records are ``order``'s so far).
    cdef dict by_end = {}
    cdef dict by_start = {}
    cdef int overflow
    for k, rec in (<dict?>state._by_end_d).items():
        if PyLong_AsLongLongAndOverflow(k, &overflow) > una or overflow > 0 \
                or kept.has(rec):
            by_end[k] = rec
    for k, rec in (<dict?>state._by_start_d).items():
        if kept.has(rec):
            by_start[k] = rec
    fin = state._pend_fin
    cdef bint fin_kept = fin is not None and (
        (<SentSegment?>fin).end > una or kept.has(fin))
    cdef Py_ssize_t n_made = n_pk - first_made, n_kept
    if (not keep and not by_end and not by_start and not fin_kept and not state.late
            and n_made <= COMPACT_TAIL and (n_made == 0 or not state.mutable)
            and (n_made == 0 or state._pk[4 * (n_pk - 1) + 1] <= una)):
        # What ``_pack`` would make of the indexes: only acknowledged pending records
        # are left, the tail, packed as they are (no tuple made and taken apart).
        n_kept = kept.count() + n_made
        _pack_pending_tail(state, first_made, n_made)
        return tracked - n_kept
    for p in range(first_made, n_pk):  # made means kept: under both keys, in order sent
        rec = state._pending_record(p)
        kept.add(rec)
        if state._pk[4 * p + 1] > una:
            keep.append(rec)
        state._index_pending(by_start, by_end, p, rec)
    if fin_kept:
        by_end[(<SentSegment>fin).end] = fin
    _drop_all_pending(state)
    state._by_end_d = by_end
    state._by_start_d = by_start
    state._order = keep if keep else None
    state._pack()
    state._pack_controls()
    return tracked - kept.count()


cdef int _pack_pending_tail(SenderStateBase state, Py_ssize_t first,
                            Py_ssize_t n) except -1:
    """The end of a compaction that keeps no index entry and nothing in ``order``: the
    pending records ``first`` to ``first + n`` packed as the tail (what ``_pack`` would
    make of the indexes), every other pending record dropped, the controls packed."""
    if n:
        state._tail = <long long*>PyMem_Malloc(4 * n * sizeof(long long))
        if state._tail == NULL:
            raise MemoryError()
        memcpy(state._tail, &state._pk[4 * first], 4 * n * sizeof(long long))
    state._tail_n = n
    state._by_end_d = state._by_start_d = None
    state._order = None
    _drop_all_pending(state)
    state._pack_controls()
    return 0


cdef bint _keeps_nothing(SenderStateBase state, long long una) except -1:
    """For a sender whose ``order`` is empty: whether :func:`_compact_sender_c` keeps no
    record and no index entry, and packs its tail as it is. Its general path then keeps
    nothing in ``order`` (nothing is there), nothing under a start (only ``order``'s
    records are kept by identity), nothing under an end (every key at or below ``una``,
    the same test as there), not the pending FIN record (acknowledged), and no pending
    record but the tail (all acknowledged: their ends increase), which it packs when the
    sender is not mutable (else it makes them); nothing late either."""
    if state.late:
        return False
    if state._pk_n and (state.mutable or state._pk[4 * (state._pk_n - 1) + 1] > una):
        return False
    fin = state._pend_fin
    if fin is not None and (<SentSegment?>fin).end > una:
        return False
    cdef int overflow
    for k in <dict?>state._by_end_d:
        if PyLong_AsLongLongAndOverflow(k, &overflow) > una or overflow > 0:
            return False
    return True


cdef int _drop_all_pending(SenderStateBase state) except -1:
    """No record pending, and no room kept for any (a compacted side rarely sends
    again)."""
    state._pk_n = 0
    state._pk_cap = 0
    PyMem_Free(state._pk)
    state._pk = NULL
    state._pend_fin = None
    return 0


cdef SequenceAnalyzerBase _new_sequence_analyzer(object cls, options):
    """``cls(options)`` for the engine's ``SequenceAnalyzer`` (:func:`_tp_new`)."""
    cdef SequenceAnalyzerBase an = <SequenceAnalyzerBase?>_tp_new(cls)
    an._init(options)
    return an

cdef enum:
    SMALL_IDENTITIES = 16


cdef class _Identities:
    """A set of objects by identity (the reference's set of ``id()``): a few in a C array,
    more in a set of ids. Holds no references: its objects must outlive it."""

    cdef PyObject* small[SMALL_IDENTITIES]
    cdef Py_ssize_t n
    cdef set ids

    cdef inline bint has(self, object obj) except -1:
        cdef Py_ssize_t i
        if self.ids is not None:
            return id(obj) in self.ids
        for i in range(self.n):
            if self.small[i] == <PyObject*>obj:
                return True
        return False

    cdef int add(self, object obj) except -1:
        cdef Py_ssize_t i
        if self.has(obj):
            return 0
        if self.ids is None and self.n < SMALL_IDENTITIES:
            self.small[self.n] = <PyObject*>obj
            self.n += 1
            return 0
        if self.ids is None:
            self.ids = {id(<object>self.small[i]) for i in range(self.n)}
        self.ids.add(id(obj))
        return 0

    cdef inline Py_ssize_t count(self):
        return len(self.ids) if self.ids is not None else self.n


cdef class EndpointMachineBase:
    """Every field of ``fsm.EndpointMachine`` (one endpoint's state and the RFC 9293
    variables an observer follows), as C fields: the replay's twins (``_apply``,
    ``_classify_c``, ``_replay_states``, ``_step_c``, ``quiet_deadline_ns``) and the steady
    path's SND.MAX read and write them without an attribute lookup. Sequence numbers are raw
    32-bit values or -1; times stay Python integers (a capture's times can exceed 64 bits)."""

    cdef public object state
    cdef public long long iss
    cdef public long long snd_max
    cdef public long long fin_seq
    cdef public bint fin_sent
    cdef public object entered_ns
    cdef public object time_wait_since_ns
    cdef public bint synack_after_ack
    cdef public long long handshake_ack
    cdef public bint peer_fin_pending
    cdef public object reset_in_established_ns

    def __init__(self):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init()

    cdef int _init(self) except -1:
        """Twin of ``fsm.EndpointMachine.__init__``."""
        self.state = _refs().inactive
        self.iss = -1
        self.snd_max = -1
        self.fin_seq = -1
        self.fin_sent = False
        self.entered_ns = 0
        self.time_wait_since_ns = -1
        self.synack_after_ack = False
        self.handshake_ack = -1
        self.peer_fin_pending = False
        self.reset_in_established_ns = -1
        return 0


cdef EndpointMachineBase _new_endpoint_machine(object cls):
    """``cls()`` for the engine's ``EndpointMachine`` (:func:`_tp_new`)."""
    cdef EndpointMachineBase m = <EndpointMachineBase?>_tp_new(cls)
    m._init()
    return m

cdef class EndpointBase:
    """The steady path's fields of ``compat._Endpoint`` (Zeek's TCP_Endpoint)."""

    cdef public long long state
    cdef public long long prev_state
    cdef public long long hist
    cdef public long long start_seq
    cdef public long long last_seq
    cdef public long long ack_seq
    cdef public long long fin_cnt
    cdef public long long win0_cnt
    cdef public long long win0_thresh
    cdef public long long rxmt_cnt
    cdef public long long rxmt_thresh
    cdef public long long trim_seq
    cdef public long long reassem_seq
    cdef public bint first_seen
    cdef public object blocks
    cdef public long long fin_seq
    cdef public long long rst_cnt
    cdef public long long last_syn
    cdef public long long last_fin
    cdef public long long last_rst
    cdef public object gap_cnt
    cdef public object gap_thresh
    cdef public object holes_filled

    def __init__(self):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init()

    cdef int _init(self) except -1:
        """Twin of ``compat._Endpoint.__init__``."""
        self.state = 0
        self.prev_state = 0
        self.start_seq = 0
        self.last_seq = 0
        self.ack_seq = 0
        self.fin_cnt = 0
        self.fin_seq = 0
        self.rst_cnt = 0
        self.last_syn = 0
        self.last_fin = 0
        self.last_rst = 0
        self.hist = 0
        self.rxmt_cnt = 0
        self.rxmt_thresh = 1
        self.win0_cnt = 0
        self.win0_thresh = 1
        self.gap_cnt = 0
        self.gap_thresh = 1
        self.reassem_seq = 1
        self.trim_seq = 0
        self.blocks = _EMPTY  # analysis.evidence.NONE_YET
        self.first_seen = False
        self.holes_filled = 0
        return 0


cdef EndpointBase _new_endpoint(object cls):
    """``cls()`` for the engine's ``compat._Endpoint`` (:func:`_tp_new`)."""
    cdef EndpointBase e = <EndpointBase?>_tp_new(cls)
    e._init()
    return e

cdef dict _LOWER = {}  # PeerSummaryBase.history: a history letter -> its lower case


cdef dict _HISTORY_ENTRIES = {}  # compat._HISTORY_ENTRIES: per letter, its two entries


cdef inline tuple _history_entry(str letter, Py_ssize_t side):
    """Twin of ``compat.history_entry``: the shared ``(letter, side)`` tuple."""
    if side != 0 and side != 1:
        return (letter, side)
    pair = _HISTORY_ENTRIES.get(letter)
    if pair is None:
        pair = _HISTORY_ENTRIES[letter] = ((letter, 0), (letter, 1))
    return <tuple>(<tuple>pair)[side]


cdef inline long long _zeek_size(EndpointBase e) noexcept:
    """Twin of ``compat._Endpoint.size``: Zeek's TCP_Endpoint::Size()."""
    cdef long long top = max(_sdelta(e.last_seq, e.start_seq), _sdelta(e.ack_seq, e.start_seq))
    cdef long long size = top - 1 if top > 0 else top
    if e.fin_cnt and size > 0:
        size -= 1
    return size if size > 0 else 0


cdef class PeerSummaryBase:
    """The fields of ``compat.PeerSummary`` its per-segment path uses, and the twin of that
    path (:meth:`on_segment`: Wireshark's completeness, Zeek's endpoint machines and
    history letters), run for every segment the steady path does not take."""

    cdef public object _eps
    cdef public object _letters
    cdef public long long _n
    cdef public long long _ws
    cdef public long long _ws_prev
    cdef public long long _orig
    cdef public bint _partial
    cdef public long long _flips
    cdef public object _max_holes

    def __init__(self, max_holes=16384):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init(max_holes)

    @property
    def holes_filled(self):
        """Twin of ``compat.PeerSummary.holes_filled`` (the engine and the record read
        it for every connection: a Python property cost ~700 instructions)."""
        cdef tuple eps = <tuple?>self._eps
        return (<EndpointBase?>eps[0]).holes_filled + (<EndpointBase?>eps[1]).holes_filled

    cdef int _init(self, max_holes) except -1:
        """Twin of ``compat.PeerSummary.__init__``."""
        self._max_holes = max_holes
        endpoint = _refs().endpoint
        self._eps = (_new_endpoint(endpoint), _new_endpoint(endpoint))
        self._orig = -1
        self._letters = []
        self._flips = 0
        self._partial = False
        self._n = 0
        self._ws = 0
        self._ws_prev = 0
        return 0

    def history(self):
        """Twin of ``compat.PeerSummary.history``: Zeek's history string, the originator's
        letters upper case (lower-cased through a cache: a str method call per letter was
        most of the cost)."""
        return self._history_c()

    def conn_state(self):
        """Twin of ``compat.PeerSummary.conn_state`` (:meth:`_conn_state_c`)."""
        return self._conn_state_c()

    def completeness(self):
        """Twin of ``compat.PeerSummary.completeness``: Wireshark's ``tcp.completeness``."""
        return self._ws

    cdef object _conn_state_c(self):
        """Zeek's ``Conn::conn_state`` from the endpoints' C fields (the reference's
        attribute reads and ``_Endpoint.size`` calls were ~1.9 k instructions a record);
        endpoints of another class take the reference."""
        cdef long long o = self._orig
        if o < 0:
            return "OTH"
        eps = self._eps
        if o > 1 or type(eps) is not tuple or PyTuple_GET_SIZE(eps) != 2 \
                or not isinstance(<object>PyTuple_GET_ITEM(eps, 0), EndpointBase) \
                or not isinstance(<object>PyTuple_GET_ITEM(eps, 1), EndpointBase):
            return type(self).__reference__.conn_state(self)
        cdef EndpointBase oe = <EndpointBase>PyTuple_GET_ITEM(eps, o)
        cdef EndpointBase re_ = <EndpointBase>PyTuple_GET_ITEM(eps, 1 - o)
        cdef long long os_ = oe.state, rs = re_.state
        cdef bint o_inactive = os_ == Z_INACTIVE or os_ == Z_PARTIAL
        cdef bint r_inactive = rs == Z_INACTIVE or rs == Z_PARTIAL
        if rs == Z_RESET:
            if os_ == Z_SYN_SENT or os_ == Z_SYN_ACK_SENT or (
                    os_ == Z_RESET and _zeek_size(oe) == 0 and _zeek_size(re_) == 0):
                return "REJ"
            return "RSTRH" if o_inactive else "RSTR"
        if os_ == Z_RESET:
            if r_inactive:
                return "RSTOS0" if _refs().rstos0_history(self._history_c()) else "OTH"
            return "RSTO"
        if rs == Z_CLOSED and os_ == Z_CLOSED:
            return "SF"
        if os_ == Z_CLOSED:
            return "SH" if r_inactive else "S2"
        if rs == Z_CLOSED:
            return "SHR" if o_inactive else "S3"
        if os_ == Z_SYN_SENT and rs == Z_INACTIVE:
            return "S0"
        if os_ == Z_ESTABLISHED and rs == Z_ESTABLISHED:
            return "S1"
        return "OTH"

    cdef object _history_c(self):
        cdef long long o = self._orig
        cdef list letters = <list?>self._letters
        cdef Py_ssize_t n = PyList_GET_SIZE(letters), flips = self._flips, k
        cdef char buf[64]
        cdef tuple item
        cdef char c
        # The common case in C: up to 64 characters, each letter a one-character ASCII
        # str (~2.8 k instructions a connection through the list and the join).
        if 0 <= flips and n + flips <= 64:
            for k in range(flips):
                buf[k] = b'^'
            for k in range(n):
                item = <tuple?><object>PyList_GET_ITEM(letters, k)
                ch = item[0]
                if not (PyUnicode_CheckExact(ch) and PyUnicode_GET_LENGTH(ch) == 1
                        and PyUnicode_IS_ASCII(ch)):
                    break
                c = (<const char*>PyUnicode_DATA(ch))[0]
                if item[1] != o and b'A' <= c <= b'Z':
                    c += 32  # str.lower of an ASCII letter; other characters stay
                buf[flips + k] = c
            else:
                return PyUnicode_DecodeASCII(buf, flips + n, NULL)
        cdef list out = []
        for obj in letters:
            item = <tuple?>obj
            ch = item[0]
            if item[1] == o:
                out.append(ch)
            else:
                low = _LOWER.get(ch)
                if low is None:
                    low = ch.lower()
                    if len(_LOWER) < 64:
                        _LOWER[ch] = low
                out.append(low)
        return "^" * self._flips + "".join(out)

    def on_segment(self, seg_obj, bint from_client, bint is_retransmission=False):
        """Twin of ``compat.PeerSummary.on_segment`` (a segment of another class, built by
        a test, takes the reference)."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__.on_segment(self, seg_obj, from_client,
                                                       is_retransmission)
        self._on_segment_c(<Segment>seg_obj, from_client)

    cdef int _on_segment_c(self, Segment seg, bint from_client) except -1:
        """:meth:`on_segment` for a compiled segment (``is_retransmission`` is unused, as
        in the reference: Zeek's own rule decides)."""
        cdef int flags = seg.flags
        cdef long long plen = seg.payload_len
        # ---- Wireshark completeness
        cdef long long ws = self._ws
        self._ws_prev = ws
        if self._n == 0:
            if flags & SYN and not flags & ACK_BIT:
                ws |= Z_WS_SYN | (WS_DATA if plen > 0 else 0)
        else:
            if flags & SYN:
                if flags & ACK_BIT:
                    ws |= Z_WS_SYNACK
            elif flags & ACK_BIT and plen == 0:
                ws |= WS_ACK
            if plen > 0 and not (flags & SYN and flags & ACK_BIT):
                ws |= WS_DATA
            if flags & FIN and flags & ACK_BIT:
                ws |= Z_WS_FIN
            if flags & RST_BIT:
                ws |= Z_WS_RST
        self._ws = ws
        # ---- Zeek
        cdef Py_ssize_t side = 0 if from_client else 1
        self._n += 1
        cdef tuple eps = self._eps
        cdef EndpointBase e, p, o
        cdef bint flip
        if not flags & (SYN | FIN | RST_BIT) and self._orig >= 0:
            e = <EndpointBase>_as(eps[side], EndpointBase)
            p = <EndpointBase>_as(eps[1 - side], EndpointBase)
            if (e.state == Z_ESTABLISHED and p.state == Z_ESTABLISHED and e.first_seen
                    and e.hist & (HIST_DATA if plen else HIST_ACK)):
                _peer_steady(self, seg, e, p, side, flags, plen)
                return 0
        if self._orig < 0:
            self._orig = side
            if not flags & SYN or flags & ACK_BIT:
                ports = _likely_server_ports()
                if seg.sport in ports:
                    if seg.dport in ports:
                        flip = not flags & SYN and seg.sport < seg.dport
                    else:
                        flip = True
                    if flip:
                        self._flip_c()
        else:
            o = <EndpointBase>_as(eps[self._orig], EndpointBase)
            if (o.state == Z_SYN_ACK_SENT
                    and (<EndpointBase>_as(eps[1 - self._orig], EndpointBase)).state == Z_INACTIVE
                    and not flags & (SYN | FIN | RST_BIT) and (flags & ACK_BIT or plen > 0)):
                self._flip_c()
                _set_state(o, Z_ESTABLISHED)
                self._partial = False
        self._zeek_c(seg, side, flags, plen)
        return 0

    cdef inline void _flip_c(self):
        """``_flip``."""
        self._orig = 1 - self._orig
        self._flips += 1

    cdef bint _check_c(self, EndpointBase e, Py_ssize_t side, long long mask,
                       str letter) except -1:
        """``_check``: record the letter the first time; True if seen before."""
        if e.hist & mask:
            return True
        e.hist |= mask
        self._letters.append(_history_entry(letter, side))
        return False

    def _ack_received(self, e, side, seq):
        """Twin of ``compat.PeerSummary._ack_received`` (Zeek's TCP_Reassembler::AckReceived:
        acknowledged bytes never seen are a gap)."""
        self._ack_received_c(<EndpointBase?>e, side, seq)

    cdef int _ack_received_c(self, EndpointBase e, Py_ssize_t side,
                             long long seq) except -1:
        if e.fin_cnt and seq >= e.fin_seq:
            seq = e.fin_seq - 1
        if seq <= e.trim_seq:
            return 0
        if seq > e.reassem_seq:
            self._undelivered(e, side, seq)  # the reference's (holes: rare)
        e.trim_seq = seq
        return 0

    cdef int _zeek_c(self, Segment seg, Py_ssize_t side, int flags,
                     long long plen) except -1:
        """Twin of ``_zeek``."""
        cdef tuple eps = self._eps
        cdef EndpointBase e = <EndpointBase?>eps[side]
        cdef EndpointBase p = <EndpointBase?>eps[1 - side]
        cdef bint is_orig = side == self._orig
        cdef long long seq = seg.seq
        cdef bint syn = flags & SYN
        cdef bint fin = flags & FIN
        cdef bint rst = flags & RST_BIT
        cdef bint ackf = flags & ACK_BIT
        cdef long long st = e.state
        cdef long long pst = p.state
        # SetPartialStatus
        if is_orig:
            if not e.first_seen:
                self._partial = not syn or ackf
        elif not e.first_seen and not self._partial:
            self._partial = not syn
        cdef long long seg_len = plen + (1 if syn else 0) + (1 if fin else 0)
        if rst:
            seg_len -= plen
        cdef long long end = (seq + seg_len) & _MASK
        # init_endpoint
        if st == Z_INACTIVE:
            if syn:
                _init_seqs(e, seq, end)
            else:
                _init_seqs(e, (seq - 1) & _MASK, seq)
        elif syn and (
                st == Z_ESTABLISHED or st == Z_PARTIAL
                or ((st == Z_SYN_SENT or st == Z_SYN_ACK_SENT) and seq != e.start_seq)
                or (st == Z_RESET and e.prev_state == Z_INACTIVE)):
            _init_seqs(e, seq, end)
        cdef long long rel_seq = _sdelta(seq, e.start_seq)
        cdef bint underflow = rel_seq < 0
        # update_history
        cdef int bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
        cdef str code
        if not bits:
            if plen:
                if not e.hist & HIST_DATA:
                    self._check_c(e, side, HIST_DATA, "D")
            elif ackf and not e.hist & HIST_ACK:
                self._check_c(e, side, HIST_ACK, "A")
        elif bits > 1:
            if fin and rst:
                self._check_c(e, side, Z_HIST_FIN_RST, "I")
            else:
                self._check_c(e, side, Z_HIST_MULTI_FLAG, "Q")
        else:
            if syn:
                code = "H" if ackf else "S"
                if self._check_c(e, side, Z_HIST_SYN, code) and rel_seq != e.last_syn:
                    self._letters.append(_history_entry(code, side))
                e.last_syn = rel_seq
            elif fin:
                if self._check_c(e, side, Z_HIST_FIN, "F") and rel_seq + plen != e.last_fin:
                    self._letters.append(_history_entry("F", side))
                e.last_fin = rel_seq + plen
            else:
                if self._check_c(e, side, Z_HIST_RST, "R") and rel_seq != e.last_rst:
                    self._letters.append(_history_entry("R", side))
                e.last_rst = rel_seq
        # update_window
        if seg.window == 0 and not rst and pst != Z_CLOSED and st != Z_RESET:
            e.win0_cnt += 1
            if e.win0_cnt == e.win0_thresh:
                self._letters.append(_history_entry("W", side))
                e.win0_thresh *= SCALED_HISTORY_BASE
        if fin:
            e.fin_cnt += 1
            e.fin_seq = rel_seq + seg_len
        if rst:
            e.rst_cnt += 1
        cdef long long rel_ack = 0, d_ack
        cdef long long ack = seg.ack
        if ackf:
            if pst == Z_INACTIVE:
                rel_ack = 1
                _init_seqs(p, (ack - 1) & _MASK, (ack - 1) & _MASK)
            else:
                rel_ack = _sdelta(ack, p.start_seq)
                if rel_ack < 0:
                    rel_ack = 0
                elif not rst:
                    d_ack = _sdelta(ack, p.ack_seq)
                    if not (ack == 0 and d_ack > TOO_LARGE_SEQ_DELTA) and d_ack > 0:
                        p.ack_seq = ack
        # update_last_seq
        cdef long long delta_last = _sdelta(end, e.last_seq)
        if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA
                             or delta_last < -TOO_LARGE_SEQ_DELTA):
            pass
        elif fin and e.last_seq == (e.start_seq + 1) & _MASK:
            e.last_seq = end
        elif st == Z_RESET:
            pass
        elif delta_last > 0:
            e.last_seq = end
        elif plen > 0:
            e.rxmt_cnt += 1
            if e.rxmt_cnt == e.rxmt_thresh:
                self._letters.append(_history_entry("T", side))
                e.rxmt_thresh *= SCALED_HISTORY_BASE
        if bits or st == Z_INACTIVE:
            self._state_machine_c(e, p, side, is_orig, flags, plen, seq)
        if ackf and rel_ack > p.trim_seq:
            self._ack_received_c(p, 1 - side, rel_ack)
        if plen > 0 and seg.captured_payload >= plen and not rst and not underflow:
            self._data_sent(e, rel_seq + 1 if syn else rel_seq, plen)
        e.first_seen = True
        return 0

    cdef int _state_machine_c(self, EndpointBase e, EndpointBase p, Py_ssize_t side,
                              bint is_orig, int flags, long long plen,
                              long long seq) except -1:
        """Twin of ``_state_machine``."""
        cdef long long st = e.state
        cdef EndpointBase orig
        if st == Z_INACTIVE:
            if flags & SYN:
                if is_orig:
                    _set_state(e, Z_SYN_ACK_SENT if flags & ACK_BIT else Z_SYN_SENT)
                else:
                    if not flags & ACK_BIT and p.state == Z_SYN_ACK_SENT \
                            and seq == e.start_seq:
                        self._partial = False
                        self._flip_c()
                        _set_state(p, Z_ESTABLISHED)
                    if p.state == Z_SYN_SENT:
                        _set_state(p, Z_ESTABLISHED)
                    _set_state(e, Z_ESTABLISHED)
            if flags & FIN:
                _set_state(e, Z_CLOSED)
            if flags & RST_BIT:
                _set_state(e, Z_RESET)
            if e.state == Z_INACTIVE:
                orig = <EndpointBase?>(<tuple>self._eps)[self._orig]
                if not is_orig and plen == 0 and orig.state == Z_SYN_SENT:
                    pass
                elif flags & ACK_BIT and p.state == Z_ESTABLISHED:
                    _set_state(e, Z_ESTABLISHED)
                    self._partial = False
                else:
                    _set_state(e, Z_PARTIAL)
        elif st == Z_SYN_SENT or st == Z_SYN_ACK_SENT:
            if flags & FIN:
                _set_state(e, Z_CLOSED)
            if flags & RST_BIT:
                _set_state(e, Z_RESET)
        elif st == Z_ESTABLISHED or st == Z_PARTIAL:
            if flags & SYN and st == Z_PARTIAL and p.state == Z_INACTIVE \
                    and not flags & ACK_BIT:
                _set_state(e, Z_SYN_SENT)
            if flags & FIN and not flags & RST_BIT:
                _set_state(e, Z_CLOSED)
                if p.state == Z_RESET and p.prev_state == Z_CLOSED:
                    _set_state(p, Z_CLOSED)
            if flags & RST_BIT:
                _set_state(e, Z_RESET)
        elif st == Z_CLOSED:
            if flags & RST_BIT and p.state != Z_CLOSED:
                _set_state(e, Z_RESET)
        return 0


cdef PeerSummaryBase _new_peer_summary(object cls, max_holes):
    """``cls(max_holes)`` for the engine's ``PeerSummary`` (:func:`_tp_new`)."""
    cdef PeerSummaryBase peer = <PeerSummaryBase?>_tp_new(cls)
    peer._init(max_holes)
    return peer

cdef inline void _set_state(EndpointBase e, long long new):
    """``_Endpoint.set_state``."""
    if new != e.state:
        e.prev_state = e.state
        e.state = new


cdef inline void _init_seqs(EndpointBase e, long long seq, long long last):
    """``_Endpoint.init_seqs``."""
    e.start_seq = seq
    e.ack_seq = seq
    e.last_seq = last


cdef inline Py_ssize_t _member_index(list members, object member) noexcept:
    """Position of ``member`` (by identity) in ``members``, -1 if absent."""
    cdef Py_ssize_t i
    for i in range(len(members)):
        if PyList_GET_ITEM(members, i) == <PyObject*>member:
            return i
    return -1


cdef enum:
    STATE_DONE = 1      # in connection._DONE_STATES
    STATE_ATTEMPT = 2   # in connection._ATTEMPT_STATES


cdef inline bint _state_in(_Refs r, object state, unsigned char bit,
                           object members) except -1:
    """``state in members`` (``members`` the set ``bit`` stands for), read from the flags of
    the state's index: no hash and set probe per test."""
    cdef Py_ssize_t i = _member_index(r.state_members, state)
    if i >= 0:
        return (r.state_flags[i] & bit) != 0
    return state in members


cdef inline Py_ssize_t _cell(_Refs r, object state, object inp) noexcept:
    """Index of the (state, input) cell in ``r.rows``, -1 for a state or input that is no
    member of its Enum (the dict lookup then decides)."""
    cdef Py_ssize_t si = _member_index(r.state_members, state)
    if si < 0:
        return -1
    cdef Py_ssize_t ii = _member_index(r.input_members, inp)
    return si * r.n_inputs + ii if ii >= 0 else -1


cdef inline object _state_value(_Refs r, object state):
    """``state._value_`` (an Enum member's attribute read costs an instance-dict lookup)."""
    cdef Py_ssize_t i = _member_index(r.state_members, state)
    return <object>PyList_GET_ITEM(r.state_values, i) if i >= 0 else state._value_


cdef tuple _apply(_Refs r, object machine_obj, object inp, object ts_ns,
                  Py_ssize_t* table_cell=NULL):
    """Twin of ``fsm.EndpointMachine.apply`` (with ``fsm.lookup``): move the endpoint
    ``machine`` by the transition table and return the row used; ``table_cell`` receives
    the row's cell in ``r.rows`` (-1: no table row)."""
    cdef EndpointMachineBase machine = <EndpointMachineBase?>machine_obj
    state = machine.state
    cdef Py_ssize_t cell = _cell(r, state, inp)
    if cell >= 0:
        row = <object>PyList_GET_ITEM(r.rows, cell)
    else:
        row = r.transitions.get((state, inp))
    if table_cell is not NULL:
        table_cell[0] = cell if row is not None else -1
    if row is None:
        row = (r.unexpected, state, f"{inp.value} is not expected in {state.value}")
    action, new_state, _reason = row  # a row is (action, next state, why)
    if new_state is r.time_wait and (state is not r.time_wait
                                     or action is r.retransmission_action):
        # Entering TIME_WAIT, or a retransmitted FIN restarting its 2MSL timer (the
        # reference says why nothing else restarts it).
        machine.time_wait_since_ns = ts_ns
    elif new_state is not state:
        machine.time_wait_since_ns = -1
    if new_state is not state:
        machine.reset_in_established_ns = (
            ts_ns if inp is r.recv_rst and state is r.established else -1)
        machine.entered_ns = ts_ns
        machine.state = new_state
    return <tuple?>row


def machine_apply(machine, inp, ts_ns):
    """``_apply`` for the tests that compare it with ``EndpointMachine.apply``."""
    return _apply(_refs(), machine, inp, ts_ns)


cdef object _LIKELY_SERVER_PORTS = None


cdef object _likely_server_ports():
    """``compat.LIKELY_SERVER_PORTS`` (imported at first use: compat imports this module)."""
    global _LIKELY_SERVER_PORTS
    if _LIKELY_SERVER_PORTS is None:
        from tcptrace_py.compat import LIKELY_SERVER_PORTS
        _LIKELY_SERVER_PORTS = LIKELY_SERVER_PORTS
    return _LIKELY_SERVER_PORTS


cdef inline Py_ssize_t _pair_index(Py_ssize_t i) except -1:
    """A list's index of two items: 0, 1, -1 or -2."""
    if i < 0:
        i += 2
    if i < 0 or i > 1:
        raise IndexError("list index out of range")
    return i


@cython.final
@cython.freelist(16)
cdef class Pair:
    """A per-side pair of integer counters (``[client, server]``: packets, payload bytes,
    the last raw window, silent probes...), where the reference has a two-item list. It
    behaves as that list for the reference's code (index 0, 1, -1, -2, ``len``, iteration,
    ``==`` with a list, the list's repr).

    The connection and its protocol facts keep their pairs as C fields (``_pv``, ``_fv``:
    18 Pair objects a connection were 576 bytes, and a list item held a Python integer,
    allocated at each count); reading the attribute gives a Pair viewing those fields
    (``owner`` keeps them alive), so the reference's ``conn.packets[side] += 1`` writes the
    connection's counter. ``Pair(a, b)`` (a copy, an unpickled one) holds its own two.
    Made at every such read (detectors read several a connection): kept on a free list."""

    # No cdef method: a class with one has a vtable pointer in every object.
    cdef long long* v
    cdef long long own[2]
    cdef object owner  # whose fields ``v`` points into (None: ``own``)

    def __cinit__(self, long long first=0, long long second=0):
        self.v = self.own
        self.own[0] = first
        self.own[1] = second

    def __getitem__(self, Py_ssize_t i):
        return self.v[_pair_index(i)]

    def __setitem__(self, Py_ssize_t i, long long value):
        self.v[_pair_index(i)] = value

    def __len__(self):
        return 2

    def __iter__(self):
        return iter((self.v[0], self.v[1]))

    def __eq__(self, other):
        if isinstance(other, (Pair, list)):
            return len(other) == 2 and self.v[0] == other[0] and self.v[1] == other[1]
        return NotImplemented

    def __repr__(self):
        return f"[{self.v[0]}, {self.v[1]}]"

    def __reduce__(self):
        return Pair, (self.v[0], self.v[1])


cdef inline Pair _pair_view(object owner, long long* fields):
    """A Pair viewing ``fields[0:2]``, which ``owner`` holds."""
    cdef Pair p = Pair.__new__(Pair)
    p.v = fields
    p.owner = owner
    return p


cdef int _pair_assign(long long* fields, object value) except -1:
    """``fields[0:2]`` = the two items of ``value`` (the reference assigns lists)."""
    first, second = value
    fields[0] = first
    fields[1] = second
    return 0


# ConnectionBase._pv: where each of the reference's pairs starts.
cdef enum:
    P_PACKETS = 0
    P_PAYLOAD_BYTES = 2
    P_PURE_SYN_SENT = 4
    P_SYNACK_SENT = 6
    P_FIN_FRAME = 8
    P_BASE_SEQ = 10
    P_WIN_RAW = 12
    P_WSCALE = 14
    P_RST_COUNT = 16
    P_SILENT_PROBES = 18
    P_ANSWERED_FRAME = 20
    P_PEER_SENT_AT_FIN = 22
    P_DUPLICATE_FRAMES = 24

# ProtocolFactsBase._fv likewise.
cdef enum:
    F_ECT = 0
    F_CE = 2
    F_ECE = 4
    F_CWR = 6
    F_ECN_SYN = 8


# ------------------------------------------------ packed evidence logs (events, notable)
ctypedef struct EvRec:
    # One ``events.Event`` of a live connection, packed: the strings it holds are the
    # table's (states, kinds, endpoints) but its reason, a strong reference. ~250 bytes as
    # an Event and its integers, 56 here; the Events are made when the log is first read.
    long long frame, ts, seq, ack, payload_len
    PyObject* text
    int32_t flags
    # bits: 1 the server's event; its direction 2 sent, 4 timer (neither: received); 8 no
    # flags (a timer's or an inference's event: flags text "")
    uint8_t old_i, new_i, kind_i, bits


ctypedef struct NoteRec:
    # One ``connection.NotablePacket``, packed (~230 bytes as an object and its integers).
    long long frame, ts, seq, ack, payload_len, since_peer
    int32_t flags
    uint8_t server, accepted


# ``EvRec.kind_i``: the kinds ``ConnectionBase._step_c`` records.
cdef tuple _EVENT_KINDS = ("transition", "ignored", "retransmission", "unexpected",
                           "inferred", "timeout")
cdef Py_ssize_t _EV_TIMEOUT = _EVENT_KINDS.index("timeout")
# connection.TIME_WAIT_EXPIRED, the reason of Connection.check_timers' event
cdef str _TIME_WAIT_EXPIRED = "2MSL elapsed by packet time (RFC 9293 3.10.8)"


cdef Py_ssize_t _value_index(list values, object value) except -2:
    """The index of the first item of ``values`` equal to ``value`` (-1: none)."""
    cdef Py_ssize_t i
    for i in range(len(values)):
        if values[i] == value:
            return i
    return -1


cdef str _CLIENT = "client"
cdef str _SERVER = "server"


cdef inline int _side_of(object endpoint) except -2:
    """0 for ``"client"``, 1 for ``"server"``, -1 for anything else: by identity first
    (the callers pass the interned literals), where ``==`` called ``PyUnicode_Compare``
    for every server-side event."""
    if endpoint is _CLIENT:
        return 0
    if endpoint is _SERVER:
        return 1
    if endpoint == "client":
        return 0
    if endpoint == "server":
        return 1
    return -1


cdef inline bint _pair_ll(long long c, object o, long long* out) noexcept:
    """:func:`_as_ll` of the value a pair of fields holds (see :func:`_split_int`)."""
    if o is None:
        out[0] = c
        return True
    return _as_ll(o, out)


cdef inline bint _as_ll(object value, long long* out) noexcept:
    """``value`` (an exact int) into ``out``; False when it is not one or does not fit."""
    cdef int overflow = 0
    if not PyLong_CheckExact(value):
        return False
    out[0] = _exact_ll(value, &overflow)
    return overflow == 0


cdef void* _grow(void* array, Py_ssize_t n, Py_ssize_t* cap, size_t size) except? NULL:
    """``array`` (``n`` used of ``cap[0]`` items of ``size`` bytes) with room for one more:
    4 items at first, then twice as many."""
    if n < cap[0]:
        return array
    cdef Py_ssize_t want = 4 if cap[0] == 0 else 2 * cap[0]
    cdef void* grown = PyMem_Realloc(array, want * size)
    if grown == NULL:
        raise MemoryError()
    cap[0] = want
    return grown


cdef object _note_obj(_Refs r, NoteRec* rec):
    """The ``connection.NotablePacket`` a packed record stands for."""
    values = (rec.frame, rec.ts, "server" if rec.server else "client", rec.flags, rec.seq,
              rec.ack, rec.payload_len, True if rec.accepted else False, rec.since_peer)
    if r.notable_factory is not None:
        return (<SlotsFactory>r.notable_factory).make(values)
    return r.new_notable(*values)


cdef int _quiet_side(EndpointMachineBase m, _Refs r, long long time_wait_ns,
                     long long* best, bint* have) except -2:
    """One endpoint's part of ``ConnectionBase._quiet_deadline_ll`` (the reference's loop
    body, in the order it runs): 1 when the endpoint is neither done nor waiting out
    TIME_WAIT (the idle timeout decides), 0 when it adds the end of its TIME_WAIT (or
    nothing), -1 when that start is not a C time (the object version decides)."""
    cdef long long since, d
    if m.state is r.time_wait and m.time_wait_since_ns >= 0:
        if not _time_c(m.time_wait_since_ns, &since):
            return -1
        d = since + time_wait_ns
        if not have[0] or d > best[0]:
            best[0] = d
            have[0] = True
        return 0
    if not _state_in(r, m.state, STATE_DONE, r.done_states):
        return 1
    return 0


cdef class ConnectionBase:
    """The fields of ``connection.Connection`` its per-segment path uses, and the twin of
    that path's frame (:meth:`on_segment`: bookkeeping and dispatch to the analyzer, the
    peer summaries and the state machines), which every segment the steady path does not
    take runs."""

    cdef public object flow_id
    cdef public object key
    cdef public object client_addr
    cdef public long long client_port
    cdef public object client
    cdef public object server
    cdef public object analyzer
    cdef public object peer
    cdef public object packet_rows
    cdef long long last_frame_c
    cdef object last_frame_o
    """``last_frame`` as a pair of fields (see :func:`_split_int`)."""
    cdef long long last_ts_c
    cdef object last_ts_o
    """``last_ts_ns`` as a pair of fields (see :func:`_split_int`)."""
    cdef public bint steady
    cdef object _recent
    cdef DupRec* _ring[2]
    cdef public long long _dup_n
    cdef public bint self_connect
    cdef public object options
    cdef public object loss_signal_ns
    cdef public object facts
    cdef public object data_after_fin
    cdef public object handshake_done_frame
    cdef public object handshake_done_ts_ns
    cdef public bint _fast
    cdef object _events  # the list, once read (None: the packed log below)
    cdef EvRec* _ev
    cdef Py_ssize_t _ev_n, _ev_cap
    cdef public object events_dropped
    cdef public object first_rst_sender
    cdef public object first_rst_frame
    cdef public object rst_not_taken_frame
    cdef public object after_rst
    cdef public object invalid_flags
    cdef public object challenged_rst_sender
    cdef public object server_addr
    cdef public object server_port
    cdef public object roles_inferred
    cdef object _notable  # the list, once read (None: the packed log below)
    cdef NoteRec* _nt
    cdef Py_ssize_t _nt_n, _nt_cap
    cdef public object notable_dropped
    cdef public object first_frame
    cdef public object first_ts_ns
    cdef public object finished
    cdef public object end_reason
    cdef public object syn_with_data
    cdef public object out_of_window_rsts
    cdef public object time_wait_expired
    cdef public object incarnation
    cdef public object previous_end_ts_ns
    cdef public object previous_states
    cdef public object compacted
    cdef public object icmp_errors
    cdef public object retx_runs
    cdef public object gave_up
    cdef public object duplicates
    cdef public object inexact_rst
    cdef public object challenges
    # LiveTable's order (borrowed links, valid while the connection is in its table)
    cdef PyObject* _lru_prev
    cdef PyObject* _lru_next
    cdef void* _lru_owner
    # The reference's two-item lists ([client, server]), as C fields: P_* index pairs.
    cdef long long _pv[26]

    @property
    def last_ts_ns(self):
        return _joined(self.last_ts_c, self.last_ts_o)

    @last_ts_ns.setter
    def last_ts_ns(self, value):
        self.last_ts_o = _split_int(value, &self.last_ts_c)

    @property
    def last_frame(self):
        return _joined(self.last_frame_c, self.last_frame_o)

    @last_frame.setter
    def last_frame(self, value):
        self.last_frame_o = _split_int(value, &self.last_frame_c)

    def __init__(self, flow_id, key, seg, client_is_src, roles_inferred, options):
        """Twin of ``Connection.__init__``: the same fields, in C (the reference's
        attribute docs say what each holds)."""
        self._init(flow_id, key, seg, client_is_src, roles_inferred, options)

    cdef int _init(self, flow_id, key, seg, client_is_src, roles_inferred,
                   options) except -1:
        """:meth:`__init__`, which ``FlowTableBase._open_c`` runs on a fresh instance
        (:func:`_tp_new`) without the class call's argument parsing."""
        cdef _Refs c = _refs()
        cdef _OptionValues ov = _options_of(options)
        self.flow_id = flow_id
        self.key = key
        cdef Segment sg
        if type(seg) is Segment:  # read in C (a test may hand another class)
            sg = <Segment>seg
            src, sport, dst, dport, frame, ts = \
                sg.src, sg.sport, sg.dst, sg.dport, _seg_frame(sg), _seg_ts(sg)
        else:
            src, sport, dst, dport, frame, ts = \
                seg.src, seg.sport, seg.dst, seg.dport, seg.frame, seg.ts_ns
        if client_is_src:
            self.client_addr, self.client_port = src, sport
            self.server_addr, self.server_port = dst, dport
        else:
            self.client_addr, self.client_port = dst, dport
            self.server_addr, self.server_port = src, sport
        self.roles_inferred = roles_inferred
        self.self_connect = src == dst and sport == dport
        self.client = _new_endpoint_machine(c.endpoint_machine)
        self.server = (self.client if self.self_connect
                       else _new_endpoint_machine(c.endpoint_machine))
        self.analyzer = _new_sequence_analyzer(c.sequence_analyzer, ov.analysis.key)
        self.peer = _new_peer_summary(c.peer_summary, ov.analysis.max_holes)
        self.options = options
        self.events_dropped = 0  # events and notable: packed logs until read
        self.notable_dropped = 0
        self.first_frame = frame
        self.last_frame_o = _split_int(frame, &self.last_frame_c)
        self.first_ts_ns = ts
        self.last_ts_o = _split_int(ts, &self.last_ts_c)
        self._pv[P_PACKETS] = self._pv[P_PACKETS + 1] = 0
        self._pv[P_PAYLOAD_BYTES] = self._pv[P_PAYLOAD_BYTES + 1] = 0
        self._pv[P_PURE_SYN_SENT] = self._pv[P_PURE_SYN_SENT + 1] = 0
        self._pv[P_SYNACK_SENT] = self._pv[P_SYNACK_SENT + 1] = 0
        self.handshake_done_frame = -1
        self.handshake_done_ts_ns = -1
        self.first_rst_sender = ""
        self.first_rst_frame = -1
        self._pv[P_FIN_FRAME] = self._pv[P_FIN_FRAME + 1] = -1
        self._pv[P_BASE_SEQ] = self._pv[P_BASE_SEQ + 1] = -1
        self._pv[P_WIN_RAW] = self._pv[P_WIN_RAW + 1] = -1
        self._pv[P_WSCALE] = self._pv[P_WSCALE + 1] = -1
        self.finished = False
        self.end_reason = "capture_end"
        self.packet_rows = [] if ov.keep_packets and (
            not ov.packet_flows or flow_id in ov.packet_flows) else None
        self._pv[P_RST_COUNT] = self._pv[P_RST_COUNT + 1] = 0
        self.data_after_fin = _EMPTY  # analysis.evidence.NONE_YET
        self.after_rst = _EMPTY  # analysis.evidence.NONE_YET
        self.invalid_flags = _EMPTY  # analysis.evidence.NONE_YET
        self.syn_with_data = _EMPTY  # analysis.evidence.NONE_YET
        self.out_of_window_rsts = _EMPTY  # analysis.evidence.NONE_YET
        self.time_wait_expired = False
        self.incarnation = 0
        self.previous_end_ts_ns = -1
        self._pv[P_SILENT_PROBES] = self._pv[P_SILENT_PROBES + 1] = 0
        self.previous_states = None
        self.compacted = False
        self._pv[P_ANSWERED_FRAME] = self._pv[P_ANSWERED_FRAME + 1] = -1
        self.rst_not_taken_frame = -1
        self._pv[P_PEER_SENT_AT_FIN] = self._pv[P_PEER_SENT_AT_FIN + 1] = -1
        self.inexact_rst = c.neither  # connection.NEITHER
        self.challenged_rst_sender = -1
        self.challenges = _EMPTY  # analysis.evidence.NONE_YET
        self.icmp_errors = _EMPTY  # analysis.evidence.NONE_YET
        self.retx_runs = c.neither
        self.gave_up = None
        self.facts = _new_protocol_facts(c.protocol_facts)
        self._pv[P_DUPLICATE_FRAMES] = self._pv[P_DUPLICATE_FRAMES + 1] = 0
        self.duplicates = _EMPTY  # analysis.evidence.NONE_YET
        self.loss_signal_ns = c.no_loss_signal  # connection.NO_LOSS_SIGNAL
        self._dup_n = ov.dup_n
        self.steady = False
        self._fast = ov.fast_path
        return 0

    def __dealloc__(self):
        _dup_free(self._ring[0], self._dup_n)
        _dup_free(self._ring[1], self._dup_n)
        self._ev_release()
        self._nt_release()

    cdef void _nt_release(self) noexcept:
        PyMem_Free(self._nt)
        self._nt = NULL
        self._nt_n = self._nt_cap = 0

    cdef void _ev_release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self._ev_n):
            Py_XDECREF(self._ev[i].text)
        PyMem_Free(self._ev)
        self._ev = NULL
        self._ev_n = self._ev_cap = 0

    @property
    def events(self):
        """The reference's list of events. A live connection keeps them packed (``EvRec``,
        ~56 bytes an event against ~250 as an ``Event`` and its integers: most connections
        of a capture's peak wait out TIME_WAIT holding ~9 events, never read before their
        record); the first read makes the list, which then takes every later event."""
        if self._events is None:
            self._events = self._events_made()
        return self._events

    @events.setter
    def events(self, value):
        self._ev_release()
        self._events = value

    cdef list _events_made(self):
        """The packed events as ``Event`` objects, in order; the packed log is emptied."""
        cdef _Refs r = _refs()
        cdef list out = []
        cdef EvRec* rec
        cdef Py_ssize_t i
        cdef int flags
        cdef SlotsFactory factory = r.event_factory
        for i in range(self._ev_n):
            rec = &self._ev[i]
            flags = rec.flags
            values = (self.flow_id, rec.frame, rec.ts,
                      "server" if rec.bits & 1 else "client", _EVENT_KINDS[rec.kind_i],
                      <object>PyList_GET_ITEM(r.state_values, rec.old_i),
                      <object>PyList_GET_ITEM(r.state_values, rec.new_i),
                      "sent" if rec.bits & 2 else "timer" if rec.bits & 4 else "received",
                      "" if rec.bits & 8 else r.flag_texts[flags]
                      if 0 <= flags < len(r.flag_texts) else r.flags_text(flags),
                      rec.seq, rec.ack, rec.payload_len, <object>rec.text)
            out.append(factory.make(values) if factory is not None
                       else r.new_event(*values))
        self._ev_release()
        return out

    cdef bint _event_packed(self, _Refs r, Segment seg, str endpoint, Py_ssize_t kind_i,
                            old, new, bint sent, long long seq, long long ack,
                            text) except -1:
        """Append the event to the packed log; False (nothing appended) when the log was
        read already or a value does not fit a field (then the caller makes the Event)."""
        if self._events is not None:
            return False
        cdef long long frame = 0, ts = 0
        cdef Py_ssize_t old_i = _member_index(r.state_members, old)
        cdef Py_ssize_t new_i = _member_index(r.state_members, new)
        cdef int side = _side_of(endpoint)
        if old_i < 0 or new_i < 0 or old_i > 255 or new_i > 255 \
                or not _pair_ll(seg.frame_c, seg.frame_o, &frame) \
                or not _pair_ll(seg.ts_c, seg.ts_o, &ts) or side < 0:
            return False
        self._ev_put(frame, ts, seq, ack, seg.payload_len, text, seg.flags, old_i, new_i,
                     kind_i, side | (2 if sent else 0))
        return True

    cdef int _ev_put(self, long long frame, long long ts, long long seq, long long ack,
                     long long payload_len, text, int32_t flags, Py_ssize_t old_i,
                     Py_ssize_t new_i, Py_ssize_t kind_i, uint8_t bits) except -1:
        """Append one record to the packed log (holding a reference to ``text``)."""
        self._ev = <EvRec*>_grow(self._ev, self._ev_n, &self._ev_cap, sizeof(EvRec))
        cdef EvRec* rec = &self._ev[self._ev_n]
        rec.frame, rec.ts, rec.seq, rec.ack, rec.payload_len = frame, ts, seq, ack, payload_len
        Py_INCREF(text)
        rec.text = <PyObject*>text
        rec.flags = flags
        rec.old_i, rec.new_i, rec.kind_i, rec.bits = old_i, new_i, kind_i, bits
        self._ev_n += 1
        return 0

    def _add_event(self, event):
        """Twin of ``Connection._add_event``: packed while the log is, when its values fit
        a record (a timer's TIME_WAIT expiry, the inferences at the capture's end)."""
        cdef long long n = self._ev_n if self._events is None else len(self._events)
        if n >= self.options.max_events_per_connection:
            return
        if self._events is None and self._event_obj_packed(_refs(), event):
            return
        self.events.append(event)

    cdef bint _event_obj_packed(self, _Refs r, event) except -1:
        """Append ``event`` (an ``Event`` of this connection) to the packed log; False
        (nothing appended) when a value does not fit a record."""
        if type(event) is not r.event_class or event.flow_id != self.flow_id:
            return False
        cdef long long frame = 0, ts = 0, seq = 0, ack = 0, plen = 0
        cdef Py_ssize_t kind_i = -1, old_i, new_i, k
        for k in range(len(_EVENT_KINDS)):
            if event.kind == _EVENT_KINDS[k]:
                kind_i = k
                break
        old_i = _value_index(r.state_values, event.old_state)
        new_i = _value_index(r.state_values, event.new_state)
        direction = event.direction
        cdef int side = _side_of(event.endpoint)
        if kind_i < 0 or old_i < 0 or new_i < 0 or old_i > 255 or new_i > 255 \
                or event.flags != "" or side < 0 \
                or not (direction == "sent" or direction == "received" or direction == "timer") \
                or not _as_ll(event.frame, &frame) or not _as_ll(event.ts_ns, &ts) \
                or not _as_ll(event.seq, &seq) or not _as_ll(event.ack, &ack) \
                or not _as_ll(event.payload_len, &plen):
            return False
        self._ev_put(frame, ts, seq, ack, plen, event.reason, 0, old_i, new_i, kind_i,
                     side | 8
                     | (2 if direction == "sent" else 4 if direction == "timer" else 0))
        return True

    def transition_frames(self, state):
        """Twin of ``Connection.transition_frames``: read from the packed log while it is
        one (no ``Event`` made)."""
        if self._events is not None:
            return type(self).__reference__.transition_frames(self, state)
        cdef _Refs r = _refs()
        cdef Py_ssize_t want = _value_index(r.state_values, state), i
        cdef list out = []
        if want < 0:
            return out
        for i in range(self._ev_n):
            if self._ev[i].kind_i == 0 and self._ev[i].new_i == want:
                out.append(self._ev[i].frame)
        return out

    @property
    def notable(self):
        """The reference's list of notable packets, packed while nobody reads them
        (``NoteRec``, as :attr:`events`)."""
        if self._notable is None:
            self._notable = self._notable_made()
        return self._notable

    @notable.setter
    def notable(self, value):
        self._nt_release()
        self._notable = value

    cdef list _notable_made(self):
        """The packed notable packets as ``NotablePacket`` objects; the log is emptied."""
        cdef _Refs r = _refs()
        cdef list out = []
        cdef Py_ssize_t i
        for i in range(self._nt_n):
            out.append(_note_obj(r, &self._nt[i]))
        self._nt_release()
        return out

    def first_notable(self, frame, flags, not_flags=0):
        """Twin of ``Connection.first_notable``: from the packed records while they are
        packed, making only the packet found (a graceful close asks for both FINs, and
        its notable packets are then never made)."""
        cdef long long want, all_of, none_of
        cdef Py_ssize_t i
        cdef NoteRec* rec
        if self._notable is None and _as_ll(frame, &want) and _as_ll(flags, &all_of) \
                and _as_ll(not_flags, &none_of):
            for i in range(self._nt_n):
                rec = &self._nt[i]
                if rec.frame == want and rec.flags & all_of == all_of \
                        and not rec.flags & none_of:
                    return _note_obj(_refs(), rec)
            return None
        return type(self).__reference__.first_notable(self, frame, flags, not_flags)

    def packed_evidence(self):
        """(events, notable packets) held packed, not yet made objects (for tests)."""
        return self._ev_n, self._nt_n

    @property
    def recent(self):
        """The reference's rings of recent segments, used only where a segment of another
        class (built by a test) takes the reference's path; compiled segments go to the C
        rings (``_ring``, one record per segment, ``DupRec``), made at a side's first
        segment."""
        if self._recent is None:
            self._recent = [None, None]
        return self._recent

    @recent.setter
    def recent(self, value):
        self._recent = value

    # The reference's pairs: views of ``_pv`` (see ``Pair``).
    @property
    def packets(self):
        return _pair_view(self, &self._pv[P_PACKETS])

    @packets.setter
    def packets(self, value):
        _pair_assign(&self._pv[P_PACKETS], value)

    @property
    def payload_bytes(self):
        return _pair_view(self, &self._pv[P_PAYLOAD_BYTES])

    @payload_bytes.setter
    def payload_bytes(self, value):
        _pair_assign(&self._pv[P_PAYLOAD_BYTES], value)

    @property
    def pure_syn_sent(self):
        return _pair_view(self, &self._pv[P_PURE_SYN_SENT])

    @pure_syn_sent.setter
    def pure_syn_sent(self, value):
        _pair_assign(&self._pv[P_PURE_SYN_SENT], value)

    @property
    def synack_sent(self):
        return _pair_view(self, &self._pv[P_SYNACK_SENT])

    @synack_sent.setter
    def synack_sent(self, value):
        _pair_assign(&self._pv[P_SYNACK_SENT], value)

    @property
    def fin_frame(self):
        return _pair_view(self, &self._pv[P_FIN_FRAME])

    @fin_frame.setter
    def fin_frame(self, value):
        _pair_assign(&self._pv[P_FIN_FRAME], value)

    @property
    def base_seq(self):
        return _pair_view(self, &self._pv[P_BASE_SEQ])

    @base_seq.setter
    def base_seq(self, value):
        _pair_assign(&self._pv[P_BASE_SEQ], value)

    @property
    def win_raw(self):
        return _pair_view(self, &self._pv[P_WIN_RAW])

    @win_raw.setter
    def win_raw(self, value):
        _pair_assign(&self._pv[P_WIN_RAW], value)

    @property
    def wscale(self):
        return _pair_view(self, &self._pv[P_WSCALE])

    @wscale.setter
    def wscale(self, value):
        _pair_assign(&self._pv[P_WSCALE], value)

    @property
    def rst_count(self):
        return _pair_view(self, &self._pv[P_RST_COUNT])

    @rst_count.setter
    def rst_count(self, value):
        _pair_assign(&self._pv[P_RST_COUNT], value)

    @property
    def silent_probes(self):
        return _pair_view(self, &self._pv[P_SILENT_PROBES])

    @silent_probes.setter
    def silent_probes(self, value):
        _pair_assign(&self._pv[P_SILENT_PROBES], value)

    @property
    def answered_frame(self):
        return _pair_view(self, &self._pv[P_ANSWERED_FRAME])

    @answered_frame.setter
    def answered_frame(self, value):
        _pair_assign(&self._pv[P_ANSWERED_FRAME], value)

    @property
    def peer_sent_at_fin(self):
        return _pair_view(self, &self._pv[P_PEER_SENT_AT_FIN])

    @peer_sent_at_fin.setter
    def peer_sent_at_fin(self, value):
        _pair_assign(&self._pv[P_PEER_SENT_AT_FIN], value)

    @property
    def duplicate_frames(self):
        return _pair_view(self, &self._pv[P_DUPLICATE_FRAMES])

    @duplicate_frames.setter
    def duplicate_frames(self, value):
        _pair_assign(&self._pv[P_DUPLICATE_FRAMES], value)

    def _replay_states(self, seg_obj, from_client, side_obj, snd_obj, rcv_obj, amask):
        """Twin of ``Connection._replay_states``: classify the segment (the reference's
        ``_classify``) and step both endpoint machines through the table."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__._replay_states(self, seg_obj, from_client,
                                                           side_obj, snd_obj, rcv_obj, amask)
        self._replay_states_c(<Segment>seg_obj, from_client, side_obj,
                              <EndpointMachineBase?>snd_obj, <EndpointMachineBase?>rcv_obj,
                              amask)

    cdef int _replay_states_c(self, Segment seg, object from_client, long long side,
                              EndpointMachineBase snd, EndpointMachineBase rcv,
                              object amask) except -1:
        """:meth:`_replay_states` for a compiled segment."""
        cdef _Refs r = _refs()
        cdef long long flags = seg.flags
        send_in, recv_in = self._classify_c(r, seg, snd, rcv, amask)
        sender = "client" if from_client else "server"
        receiver = "server" if from_client else "client"
        # Fields the table's inference rules rely on (rule 4 of fsm.py).
        if send_in is r.send_syn_ack and snd.state is r.established \
                and snd.handshake_ack >= 0:
            snd.synack_after_ack = True
        if send_in is r.send_fin_crossed:
            snd.peer_fin_pending = True
        elif (snd.peer_fin_pending and flags & ACK_BIT and rcv.fin_sent
              and not _seq_lt_c(seg.ack, (rcv.fin_seq + 1) & _MASK)):
            snd.peer_fin_pending = False
            self._step_c(r, snd, r.recv_fin, seg, sender, False, 1 - side)
        if flags & (FIN | RST_BIT | SYN) == FIN and self.challenged_rst_sender == side \
                and snd.state is r.closed:
            self._step_c(r, snd, r.send_after_challenged_rst, seg, sender, True, side)
            send_in = self._classify_c(r, seg, snd, rcv, amask)[0]
        self._step_c(r, snd, send_in, seg, sender, True, side)
        if recv_in is r.recv_fin or recv_in is r.recv_fin_ack_of_fin:
            rcv.peer_fin_pending = False
        if recv_in is r.recv_ack and rcv.state is r.syn_received \
                and rcv.handshake_ack < 0 and flags & ACK_BIT:
            rcv.handshake_ack = seg.ack
        self._step_c(r, rcv, recv_in, seg, receiver, False, side)
        return 0

    cdef tuple _classify_c(self, _Refs r, Segment seg, EndpointMachineBase snd,
                           EndpointMachineBase rcv, amask):
        """Twin of ``Connection._classify`` for the segments of every connection: SYN,
        FIN and ACK segments of a sender not CLOSED. A RST, and a segment from an endpoint
        the replay has CLOSED (the RFC 5961 rules), take the reference."""
        cdef long long flags = seg.flags
        if flags & RST_BIT:
            return type(self).__reference__._classify(self, seg, snd, rcv, amask)
        if flags & SYN:
            if flags & FIN:
                return r.invalid_flags, r.invalid_flags
            if flags & ACK_BIT:
                return r.send_syn_ack, r.recv_syn_ack
            if snd.state is r.established and rcv.state is r.syn_sent and \
                    self._pv[P_PURE_SYN_SENT + (0 if snd is self.client else 1)] == 1:
                return r.send_split_syn, r.recv_syn
            return r.send_syn, r.recv_syn
        if not flags & (ACK_BIT | FIN):
            return r.invalid_flags, r.invalid_flags
        cdef bint acks_rcv_fin = (flags & ACK_BIT and rcv.fin_sent
                                  and not _seq_lt_c(seg.ack, (rcv.fin_seq + 1) & _MASK))
        if flags & FIN:
            fin_seq = (seg.seq + seg.payload_len) & _MASK
            send = r.send_fin_again if snd.fin_sent and fin_seq == snd.fin_seq \
                else r.send_fin
            if (send is r.send_fin and snd.state is r.close_wait and rcv.fin_sent
                    and flags & ACK_BIT
                    and _seq_lt_c(seg.ack, (rcv.fin_seq + 1) & _MASK)):
                send = r.send_fin_crossed
            return send, (r.recv_fin_ack_of_fin if acks_rcv_fin else r.recv_fin)
        if snd.state is r.closed:
            return type(self).__reference__._classify(self, seg, snd, rcv, amask)
        if acks_rcv_fin:
            return r.send_ack, r.recv_ack_of_fin
        if rcv.synack_after_ack and rcv.state is r.syn_received \
                and not seg.payload_len and seg.ack == rcv.handshake_ack:
            return r.send_ack, r.recv_ack_unconfirmed
        return r.send_ack, r.recv_ack

    def _step(self, machine, inp, seg, endpoint, direction, side):
        """``Connection._step`` (its twin, for the reference's other callers)."""
        if type(seg) is not Segment:
            return type(self).__reference__._step(self, machine, inp, seg, endpoint,
                                                  direction, side)
        self._step_c(_refs(), machine, inp, <Segment>seg, endpoint, direction == "sent",
                     side)
        return None

    cdef int _step_c(self, _Refs r, EndpointMachineBase machine, inp, Segment seg,
                     str endpoint, bint sent, long long side) except -1:
        """Twin of ``Connection._step``: one endpoint machine through the table, then the
        RST, after-RST and invalid-flag evidence and the event."""
        old = machine.state
        cdef Py_ssize_t cell = -1
        action, new, reason = _apply(r, machine, inp, _seg_ts(seg), &cell)
        if action is r.ok and new is old:
            return 0
        if inp is r.recv_rst or (inp is r.send_rst
                                 and not _state_in(r, old, STATE_DONE, r.done_states)):
            if (not self.first_rst_sender or self.rst_not_taken_frame > self.first_rst_frame) \
                    and new is r.closed and old is not new and (
                    inp is r.recv_rst or self._rst_acceptable(
                        seg, self.server if side == 0 else self.client)):
                self.first_rst_sender = "client" if side == 0 else "server"
                self.first_rst_frame = _seg_frame(seg)
        if old is r.closed and sent and (inp is r.send_ack or inp is r.send_fin) \
                and (seg.payload_len or seg.flags & FIN) and self.first_rst_frame >= 0:
            self._keep("after_rst", _seg_frame(seg))
        invalid = self.invalid_flags
        if inp is r.invalid_flags and sent and not (
                invalid and invalid[len(invalid) - 1] == _seg_frame(seg)):  # not in [-1:]
            self._keep("invalid_flags", _seg_frame(seg))
        cdef Py_ssize_t kind_i  # the event's kind, an index of _EVENT_KINDS
        if new is not old:
            kind_i = 0  # transition
        elif action is r.ignored:
            kind_i = 1
        elif action is r.retransmission_action:
            kind_i = 2
        else:
            kind_i = 3  # unexpected
        if action is r.infer:
            kind_i = 4  # inferred
            if inp is r.send_challenge_ack:
                self._challenged_rst(seg, side)
            elif inp is r.send_after_challenged_rst:
                self.challenged_rst_sender = -1
            if inp is r.send_after_lost_rst and self.rst_not_taken_frame < 0:
                self.rst_not_taken_frame = _seg_frame(seg)
                mine = {e.frame for e in self.events
                        if e.endpoint == endpoint and e.direction == "sent"}
                self.after_rst = [f for f in self.after_rst if f not in mine]
        cdef long long* base_seq = &self._pv[P_BASE_SEQ]
        cdef long long base_snd = base_seq[side]
        cdef long long base_rcv = base_seq[1 - side]
        text = <object>PyList_GET_ITEM(r.cell_texts, cell) if cell >= 0 else None
        if text is None:
            key = (inp, reason)
            text = r.event_reasons.get(key)
            if text is None:
                text = r.event_reasons[key] = f"{inp._value_}: {reason}"
            if cell >= 0:
                r.cell_texts[cell] = text
        # _event
        if (self._ev_n if self._events is None else len(self._events)) \
                >= _options_of(self.options).max_events_per_connection:
            self.events_dropped += 1
            return 0
        cdef long long seq = (seg.seq - base_snd) & _MASK if base_snd >= 0 else seg.seq
        cdef long long ack = (seg.ack - base_rcv) & _MASK \
            if base_rcv >= 0 and seg.flags & ACK_BIT else seg.ack
        if self._event_packed(r, seg, endpoint, kind_i, old, new, sent, seq, ack, text):
            return 0
        cdef list events = <list?>self.events
        # segment.flags_text, its table read here (no call per event)
        flags_text = (r.flag_texts[seg.flags] if 0 <= seg.flags < len(r.flag_texts)
                      else r.flags_text(seg.flags))
        values = (self.flow_id, _seg_frame(seg), _seg_ts(seg), endpoint, _EVENT_KINDS[kind_i],
                  _state_value(r, old), _state_value(r, new), "sent" if sent else "received",
                  flags_text, seq, ack, seg.payload_len, text)
        events.append(r.event_factory.make(values) if r.event_factory is not None
                      else r.new_event(*values))
        return 0

    def is_done(self):
        """Twin of ``Connection.is_done``: no segment can change this connection any more
        (both ends closed)."""
        return self._is_done_c(_refs())

    cdef bint _is_done_c(self, _Refs r) except -1:
        cs = (<EndpointMachineBase?>self.client).state
        ss = (<EndpointMachineBase?>self.server).state
        done = r.done_states
        return (_state_in(r, cs, STATE_DONE, done) and _state_in(r, ss, STATE_DONE, done)
                and (cs is r.closed or ss is r.closed))

    cdef bint _is_attempt_c(self, _Refs r) except -1:
        """Twin of ``Connection.is_attempt``: no endpoint ever reached ESTABLISHED."""
        return (_state_in(r, (<EndpointMachineBase?>self.client).state, STATE_ATTEMPT,
                          r.attempt_states)
                and _state_in(r, (<EndpointMachineBase?>self.server).state, STATE_ATTEMPT,
                              r.attempt_states))

    def quiet_deadline_ns(self):
        """Twin of ``Connection.quiet_deadline_ns`` (with ``is_done`` and ``is_attempt``
        inlined): the packet time after which the connection can be emitted if nothing
        else arrives."""
        cdef long long d
        cdef _Refs r = _refs()
        if self._quiet_deadline_ll(r, &d):
            return d
        return self._quiet_deadline_c(r)

    def finalize(self, end_ns):
        """Twin of ``Connection.finalize``: for a connection with no ICMP error kept, no
        retransmission run and a client not in SYN_SENT (nearly every one), the
        reference's steps after ``check_timers`` find nothing to infer, so only that runs
        (``check_timers`` moves an end out of TIME_WAIT only: it cannot change those
        tests). The others take the reference."""
        cdef _Refs r = _refs()
        if self.icmp_errors or self.retx_runs is not r.neither \
                or (<EndpointMachineBase?>self.client).state is r.syn_sent:
            return type(self).__reference__.finalize(self, end_ns)
        self.check_timers(end_ns)

    def check_timers(self, now_ns, seg=None):
        """Twin of ``Connection.check_timers``: an end whose TIME_WAIT has run its 2MSL by
        packet time takes the table's TIMEOUT (``_apply``) and its event, whose states are
        the members' values read from ``_Refs`` (an Enum member's ``.value`` is Python
        code). Called at every deadline the sweep pops and at every connection's end. The
        event goes straight into the packed log (:meth:`_timer_event_packed`) where
        ``_add_event`` would have packed it."""
        cdef _Refs r = _refs()
        cdef EndpointMachineBase m
        tw_ns = _options_of(self.options).time_wait_ns
        cdef int side
        for side in range(2):
            m = <EndpointMachineBase>_as(self.client if side == 0 else self.server,
                                         EndpointMachineBase)
            since = m.time_wait_since_ns
            if since >= 0 and m.state is r.time_wait and now_ns - since >= tw_ns:
                old = m.state
                expiry = since + tw_ns
                _apply(r, m, r.timeout_input, expiry)
                self.time_wait_expired = True
                if not self._timer_event_packed(r, seg, side, old, m.state, expiry):
                    self._add_event(r.new_event(
                        self.flow_id,
                        seg.frame if seg else _joined(self.last_frame_c, self.last_frame_o),
                        expiry, "client" if side == 0 else "server", "timeout",
                        _state_value(r, old), _state_value(r, m.state), "timer", "", 0, 0, 0,
                        _TIME_WAIT_EXPIRED))
            if self.self_connect:
                break
        return None

    cdef bint _timer_event_packed(self, _Refs r, seg, int side, old, new,
                                  expiry) except -1:
        """What ``_add_event`` does with :meth:`check_timers`' event while the log is
        packed, without making the ``Event``: nothing past ``max_events_per_connection``,
        else the record ``_event_obj_packed`` would append for it. False (nothing done)
        when the log was read already or a value does not fit a record: the caller then
        makes the ``Event``. Why: a TIME_WAIT end expires in most closed connections, and
        the ``Event`` made and read back field by field cost ~7.5 k instructions (2m.pcap:
        108 M of 10.5 G)."""
        if self._events is not None:
            return False
        if self._ev_n >= _options_of(self.options).max_events_per_connection:
            return True  # dropped, as _add_event drops it
        cdef long long frame = 0, ts = 0
        cdef Py_ssize_t old_i = _member_index(r.state_members, old)
        cdef Py_ssize_t new_i = _member_index(r.state_members, new)
        if old_i < 0 or new_i < 0 or old_i > 255 or new_i > 255 or not _as_ll(expiry, &ts):
            return False
        if seg:
            if not _as_ll(seg.frame, &frame):
                return False
        elif not _pair_ll(self.last_frame_c, self.last_frame_o, &frame):
            return False
        self._ev_put(frame, ts, 0, 0, 0, _TIME_WAIT_EXPIRED, 0, old_i, new_i, _EV_TIMEOUT,
                     side | 8 | 4)
        return True

    def compact(self):
        """Twin of ``Connection.compact``: the same test of both ends' states, then the
        analyzer's compaction through its compiled entry point."""
        return self._compact_c(_refs())

    cdef object _compact_c(self, _Refs r):
        cs = (<EndpointMachineBase?>self.client).state
        ss = (<EndpointMachineBase?>self.server).state
        quiet = r.quiet_states
        if self.compacted or cs not in quiet or ss not in quiet:
            return self.compacted
        an = self.analyzer
        if isinstance(an, SequenceAnalyzerBase):
            (<SequenceAnalyzerBase>an)._compact_c()
        else:
            an.compact()
        self.compacted = True
        return True

    cdef object _quiet_deadline_c(self, _Refs r):
        cdef _OptionValues opts = _options_of(self.options)
        cdef EndpointMachineBase client = <EndpointMachineBase?>self.client
        cdef EndpointMachineBase server = <EndpointMachineBase?>self.server
        cdef EndpointMachineBase m
        done = r.done_states
        last = _joined(self.last_ts_c, self.last_ts_o)
        if self._is_done_c(r):
            return last + opts.closed_linger_ns
        if self._is_attempt_c(r):
            return last + min(opts.attempt_timeout_ns, opts.idle_timeout_ns)
        # ``max(deadlines + [linger])`` without the lists and the call: the first of the
        # largest (equal integers are interchangeable).
        best = None
        for m in (client, server):
            if m.state is r.time_wait and m.time_wait_since_ns >= 0:
                d = m.time_wait_since_ns + opts.time_wait_ns
                if best is None or d > best:
                    best = d
            elif not _state_in(r, m.state, STATE_DONE, done):
                return last + opts.idle_timeout_ns
        linger = last + opts.closed_linger_ns
        return linger if best is None or linger > best else best

    cdef bint _quiet_deadline_ll(self, _Refs r, long long* out) except -1:
        """:meth:`_quiet_deadline_c` in C integers, into ``out``: False (``out`` not
        written) where a value is not one within +-2**62 (the last time, a TIME_WAIT start)
        or an option is not (``_OptionValues.deadlines_c``); then the object version
        decides. Why: the full path asks a closing or new connection's deadline ~3 times a
        connection, and the Python integers of the object version (the sums, the maxima,
        their boxes) were ~1.3 k instructions a call."""
        if self.last_ts_o is not None:
            return False
        cdef _OptionValues opts = _options_of(self.options)
        if not opts.deadlines_c:
            return False
        cdef long long last = self.last_ts_c
        if self._is_done_c(r):
            out[0] = last + opts.closed_linger_c
            return True
        if self._is_attempt_c(r):
            out[0] = last + min(opts.attempt_timeout_c, opts.idle_timeout_c)
            return True
        cdef long long best = 0, d
        cdef bint have = False
        cdef int k = _quiet_side(<EndpointMachineBase?>self.client, r, opts.time_wait_c,
                                 &best, &have)
        if k == 0:
            k = _quiet_side(<EndpointMachineBase?>self.server, r, opts.time_wait_c, &best,
                            &have)
        if k < 0:
            return False
        if k > 0:
            out[0] = last + opts.idle_timeout_c
            return True
        d = last + opts.closed_linger_c
        out[0] = d if not have or d > best else best
        return True

    def _note_control(self, seg_obj, side, snd, rcv):
        """Twin of ``Connection._note_control`` (a segment of another class, built by a
        test, takes the reference)."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__._note_control(self, seg_obj, side, snd, rcv)
        self._note_control_c(_refs(), <Segment>seg_obj, side, snd, rcv)

    cdef int _push_note(self, Segment seg, long long frame, long long ts,
                        long long since_peer, Py_ssize_t side, bint accepted) except -1:
        """Append the notable packet ``seg`` to the packed ones (``NoteRec``)."""
        self._nt = <NoteRec*>_grow(self._nt, self._nt_n, &self._nt_cap, sizeof(NoteRec))
        cdef NoteRec* rec = &self._nt[self._nt_n]
        rec.frame = frame
        rec.ts = ts
        rec.seq = seg.seq
        rec.ack = seg.ack
        rec.payload_len = seg.payload_len
        rec.since_peer = since_peer
        rec.flags = seg.flags
        rec.server = side != 0
        rec.accepted = accepted
        self._nt_n += 1
        return 0

    cdef int _note_control_c(self, _Refs r, Segment seg, Py_ssize_t side, snd,
                             rcv) except -1:
        """A SYN, FIN or RST segment's bookkeeping: handshake counts and options, the
        RST count, and the notable packet (evidence) it adds."""
        cdef long long flags = seg.flags
        cdef long long* counts
        sender = "client" if side == 0 else "server"
        cdef EndpointMachineBase machine
        if flags & SYN:
            counts = &self._pv[P_SYNACK_SENT if flags & ACK_BIT else P_PURE_SYN_SENT]
            counts[side] += 1
            if not flags & (RST_BIT | FIN):
                if isinstance(snd, EndpointMachineBase):
                    machine = <EndpointMachineBase>snd  # its C field, not the attribute
                    if machine.iss < 0:
                        machine.iss = seg.seq
                        self._pv[P_BASE_SEQ + side] = seg.seq
                elif snd.iss < 0:
                    snd.iss = seg.seq
                    self._pv[P_BASE_SEQ + side] = seg.seq
            if seg.wscale >= 0:
                self._pv[P_WSCALE + side] = seg.wscale
            if not flags & (RST_BIT | FIN):
                (<ProtocolFactsBase?>self.facts)._on_handshake_c(seg, side)
            if seg.payload_len:
                self._keep("syn_with_data", _seg_frame(seg))
            if flags & (FIN | RST_BIT):
                self._keep("invalid_flags", _seg_frame(seg))
        if flags & RST_BIT:
            counts = &self._pv[P_RST_COUNT]
            counts[side] += 1
        if (self._nt_n if self._notable is None else len(self._notable)) \
                >= _options_of(self.options).analysis.max_evidence_items:
            self.notable_dropped += 1
            return 0
        an = <SequenceAnalyzerBase?>self.analyzer
        cdef DirectionStatsBase peer_st = <DirectionStatsBase?>(an.server if side == 0
                                                                else an.client)
        accepted = True if not flags & RST_BIT else self._rst_acceptable(seg, rcv)
        cdef long long frame_c, ts_c, since_c
        if seg.ts_o is None and peer_st.last_ts_o is None:
            # Both times C integers within +-2**62: the gap in C, nothing boxed.
            ts_c = seg.ts_c
            since_c = ts_c - peer_st.last_ts_c if peer_st.last_ts_c >= 0 else -1
            if self._notable is None and type(accepted) is bool \
                    and _pair_ll(seg.frame_c, seg.frame_o, &frame_c):
                return self._push_note(seg, frame_c, ts_c, since_c, side, accepted is True)
        peer_ts = _joined(peer_st.last_ts_c, peer_st.last_ts_o)
        ts = _seg_ts(seg)
        since_peer = ts - peer_ts if peer_ts >= 0 else -1
        if self._notable is None and type(accepted) is bool \
                and _pair_ll(seg.frame_c, seg.frame_o, &frame_c) \
                and _as_ll(ts, &ts_c) and _as_ll(since_peer, &since_c):
            return self._push_note(seg, frame_c, ts_c, since_c, side, accepted is True)
        values = (_seg_frame(seg), ts, sender, flags, seg.seq, seg.ack, seg.payload_len,
                  accepted, since_peer)
        (<list?>self.notable).append(
            r.notable_factory.make(values) if r.notable_factory is not None
            else r.new_notable(*values))
        return 0

    def on_segment(self, seg_obj):
        """Twin of ``Connection.on_segment``: the same steps in the same order; the
        analyzer, the state replay and the evidence helpers are the same calls (a segment
        of another class, built by a test, takes the reference)."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__.on_segment(self, seg_obj)
        return self._on_segment_c(<Segment>seg_obj)

    cdef object _on_segment_c(self, Segment seg):
        """:meth:`on_segment` for a compiled segment (the flow table's full path calls it
        directly)."""
        cdef _Refs r = _refs()
        cdef bint from_client = self.self_connect or (
            seg.sport == self.client_port and seg.src == self.client_addr)
        cdef Py_ssize_t side = 0 if from_client else 1
        cdef long long plen = seg.payload_len
        cdef long long flags = seg.flags
        ts = _seg_ts(seg)
        self.last_frame_c, self.last_frame_o = seg.frame_c, seg.frame_o
        self.last_ts_c, self.last_ts_o = seg.ts_c, seg.ts_o
        cdef long long* packets = &self._pv[P_PACKETS]
        packets[side] += 1
        self._pv[P_PAYLOAD_BYTES + side] += plen
        cdef EndpointMachineBase snd, rcv
        if from_client:
            snd, rcv = self.client, self.server
        else:
            snd, rcv = self.server, self.client
        cdef DupRec* recent = self._ring[side]
        cdef long long snd_max, d, a, end
        cdef SenderStateBase peer_state
        cdef SequenceAnalyzerBase an
        cdef RunningStatsBase rtt
        if recent == NULL:
            self._ring[side] = _dup_ring(seg, self._dup_n)
        else:
            # Only a segment sending nothing beyond SND.MAX and acknowledging nothing
            # beyond its sender's highest ACK can repeat an earlier one (the reference's
            # comment says why).
            snd_max = snd.snd_max
            d = (seg.seq + plen - snd_max) & _MASK
            if snd_max >= 0 and (d == 0 or d >= _HALF):
                an = <SequenceAnalyzerBase?>self.analyzer
                peer_state = <SenderStateBase?>(an._s if from_client else an._c)
                a = (seg.ack - peer_state.base - peer_state.snd_una) & _MASK
                if not flags & ACK_BIT or peer_state.base < 0 or a == 0 or a >= _HALF:
                    rtt = <RunningStatsBase?>(
                        (<DirectionStatsBase?>(an.client if from_client else an.server)).rtt)
                    found = _original_of_c(seg, recent, self._dup_n,
                                           _options_of(self.options)
                                           .duplicate_weak_max_interval_ns,
                                           _options_of(self.options)
                                           .duplicate_syn_max_interval_ns,
                                           self.loss_signal_ns[1 - side],
                                           _joined(peer_state.last_ts_c,
                                                   peer_state.last_ts_o),
                                           rtt.min if rtt.count else -1)
                    if found is not None:
                        return self._on_duplicate(seg, found[0], found[1], side,
                                                  from_client)
            _dup_put(&recent[packets[side] % self._dup_n], seg, False)
        cdef long long* base_seq = &self._pv[P_BASE_SEQ]
        if base_seq[side] < 0:
            base_seq[side] = seg.seq
        if seg.window >= 0:
            self._pv[P_WIN_RAW + side] = seg.window
        if snd.time_wait_since_ns >= 0 or rcv.time_wait_since_ns >= 0:
            self.check_timers(ts, seg)
        if flags & (SYN | FIN | RST_BIT):
            self._note_control_c(r, seg, side, snd, rcv)
        if seg.ecn or flags & ECN_FLAGS:
            self.facts.on_marked(seg, side)
        cdef long long* answered = &self._pv[P_ANSWERED_FRAME]
        if flags & (SYN | RST_BIT | ACK_BIT) == ACK_BIT and answered[side] < 0 and (
                self._pv[P_PURE_SYN_SENT + side] or self._pv[P_SYNACK_SENT + side]):
            answered[side] = _seg_frame(seg)
        amask_obj = (<SequenceAnalyzerBase?>self.analyzer)._on_segment_c(seg, from_client)
        cdef long long amask = amask_obj
        if amask & r.loss_signal:
            if type(self.loss_signal_ns) is not list:
                self.loss_signal_ns = list(self.loss_signal_ns)  # evidence_list
            (<list?>self.loss_signal_ns)[side] = ts
        cdef long long* silent = &self._pv[P_SILENT_PROBES]
        silent[1 - side] = 0
        if amask & r.probe:
            silent[side] += 1
            if amask & r.retransmission and plen:
                self._note_retransmission(seg, side)
        (<PeerSummaryBase?>self.peer)._on_segment_c(seg, from_client)
        rows = self.packet_rows
        if rows is not None:
            rows.append((_seg_frame(seg), ts, self.flow_id, from_client, flags, amask_obj, plen))
        established = r.established
        if not (flags & (SYN | FIN | RST_BIT | ACK_BIT) == ACK_BIT
                and snd.state is established and rcv.state is established
                and not rcv.fin_sent and r.fast_established):
            self._replay_states_c(seg, from_client, side, snd, rcv, amask_obj)
        # Sender-side variables follow what it sent.
        end = (seg.seq + plen + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & _MASK
        snd_max = snd.snd_max
        if snd_max < 0 or (((snd_max - end) & _MASK) >= _HALF and snd_max != end
                           and not flags & RST_BIT):
            snd.snd_max = end
        cdef long long fin_seq
        if flags & FIN and not flags & RST_BIT:
            fin_seq = (seg.seq + plen) & _MASK
            if not snd.fin_sent:
                snd.fin_sent = True
                snd.fin_seq = fin_seq
                self._pv[P_FIN_FRAME + side] = _seg_frame(seg)
                self._pv[P_PEER_SENT_AT_FIN + side] = rcv.snd_max
        elif plen and snd.fin_sent and _seq_lt_c(snd.fin_seq, seg.seq + 1) \
                and not amask & r.not_data_after_fin:
            self._keep("data_after_fin", _seg_frame(seg))
        cdef long long iss
        if self.handshake_done_frame < 0 and from_client and flags & ACK_BIT \
                and not flags & (SYN | RST_BIT) and self._pv[P_SYNACK_SENT + 1]:
            iss = self.server.iss
            if iss < 0 or seg.ack == (iss + 1) & _MASK \
                    or _seq_lt_c((iss + 1) & _MASK, seg.ack):
                self.handshake_done_frame = _seg_frame(seg)
                self.handshake_done_ts_ns = ts
        if self._fast:
            self._update_steady_c(r)
        return amask_obj

    def update_steady(self):
        """Twin of ``Connection.update_steady`` (see :meth:`_update_steady_c`)."""
        self._update_steady_c(_refs())

    cdef int _update_steady_c(self, _Refs r) except -1:
        """Twin of ``Connection.update_steady``: whether the steady path may take this
        connection's segments, from the C fields (``PeerSummary.steady`` inlined)."""
        cdef EndpointMachineBase c = <EndpointMachineBase?>self.client
        cdef EndpointMachineBase s = <EndpointMachineBase?>self.server
        cdef PeerSummaryBase peer
        cdef EndpointBase o, q
        self.steady = False
        if not (c.state is r.established and s.state is r.established
                and r.fast_established and not c.fin_sent and not s.fin_sent
                and c.time_wait_since_ns < 0 and s.time_wait_since_ns < 0
                and not self.self_connect
                and (self.handshake_done_frame >= 0 or not self._pv[P_SYNACK_SENT + 1])):
            return 0
        peer_obj = self.peer
        if not isinstance(peer_obj, PeerSummaryBase) or type(peer_obj).steady is not \
                r.peer_steady:
            self.steady = peer_obj.steady()  # another class's own rule: call it
            return 0
        peer = <PeerSummaryBase>peer_obj
        eps = <tuple?>peer._eps
        o = <EndpointBase?>eps[0]
        q = <EndpointBase?>eps[1]
        self.steady = (peer._orig >= 0 and peer._n > 0 and o.state == Z_ESTABLISHED
                       and q.state == Z_ESTABLISHED and o.first_seen and q.first_seen)
        return 0


# ---------------------------------------------------------------- facts.ProtocolFacts
cdef long long ACE_FLAGS = 0x100 | 0x80 | 0x40  # facts.ACE_FLAGS (AE | CWR | ECE)
cdef long long ECE_BIT = 0x40
cdef long long CWR_BIT = 0x80
cdef long long IP_ECN_CE = 3  # facts.IP_ECN_CE


cdef class ProtocolFactsBase:
    """Twin of ``facts.ProtocolFacts`` (ECN and Fast Open facts of one connection): its
    per-side counts as :class:`Pair` and every other field in C, with compiled
    ``on_handshake``, ``on_marked`` and ``add_columns``. The reference's attribute docs say
    what each holds."""

    cdef public object ecn_mode
    cdef public object tfo_option
    cdef public long long syn_data_bytes
    cdef public long long syn_seq
    cdef public bint syn_data_acked
    # The reference's two-item lists, as C fields: F_* index pairs.
    cdef long long _fv[10]

    # The reference's pairs: views of ``_fv`` (see ``Pair``).
    @property
    def ect(self):
        return _pair_view(self, &self._fv[F_ECT])

    @ect.setter
    def ect(self, value):
        _pair_assign(&self._fv[F_ECT], value)

    @property
    def ce(self):
        return _pair_view(self, &self._fv[F_CE])

    @ce.setter
    def ce(self, value):
        _pair_assign(&self._fv[F_CE], value)

    @property
    def ece(self):
        return _pair_view(self, &self._fv[F_ECE])

    @ece.setter
    def ece(self, value):
        _pair_assign(&self._fv[F_ECE], value)

    @property
    def cwr(self):
        return _pair_view(self, &self._fv[F_CWR])

    @cwr.setter
    def cwr(self, value):
        _pair_assign(&self._fv[F_CWR], value)

    @property
    def ecn_syn(self):
        return _pair_view(self, &self._fv[F_ECN_SYN])

    @ecn_syn.setter
    def ecn_syn(self, value):
        _pair_assign(&self._fv[F_ECN_SYN], value)

    def __init__(self):
        """The reference's ``__init__``: :meth:`_init`, which ``_new_*`` also runs."""
        self._init()

    cdef int _init(self) except -1:
        """Twin of ``ProtocolFacts.__init__``."""
        self._fv[F_ECT] = self._fv[F_ECT + 1] = 0
        self._fv[F_CE] = self._fv[F_CE + 1] = 0
        self._fv[F_ECE] = self._fv[F_ECE + 1] = 0
        self._fv[F_CWR] = self._fv[F_CWR + 1] = 0
        self._fv[F_ECN_SYN] = self._fv[F_ECN_SYN + 1] = 0
        self.ecn_mode = ""
        self.tfo_option = ""
        self.syn_data_bytes = 0
        self.syn_seq = -1
        self.syn_data_acked = False
        return 0

    def on_handshake(self, seg_obj, side):
        """Twin of ``ProtocolFacts.on_handshake`` (a segment of another class, built by a
        test, takes the reference)."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__.on_handshake(self, seg_obj, side)
        self._on_handshake_c(<Segment>seg_obj, side)

    cdef int _on_handshake_c(self, Segment seg, Py_ssize_t side) except -1:
        cdef long long flags = seg.flags
        cdef long long* ecn_syn = &self._fv[F_ECN_SYN]
        cdef long long asked
        if flags & ACK_BIT:
            asked = ecn_syn[1 - side]
            if asked == ACE_FLAGS and (flags & ACE_FLAGS) in _ACCECN_SYNACK:
                self.ecn_mode = "accecn"
            elif asked & ECN_FLAGS == ECN_FLAGS and flags & ACE_FLAGS == ECE_BIT:
                self.ecn_mode = "classic"
            if side == 1 and self.syn_seq >= 0 and \
                    seg.ack == (self.syn_seq + 1 + self.syn_data_bytes) & _MASK:
                self.syn_data_acked = True
            return 0
        ecn_syn[side] = flags & ACE_FLAGS
        if side == 0:
            if not self.tfo_option and seg.other_options:
                self.tfo_option = _refs().tfo_option(seg)
            if seg.payload_len and self.syn_seq < 0:
                self.syn_seq = seg.seq
                self.syn_data_bytes = seg.payload_len
        return 0

    def on_marked(self, seg_obj, side):
        """Twin of ``ProtocolFacts.on_marked``."""
        if type(seg_obj) is not Segment:
            return type(self).__reference__.on_marked(self, seg_obj, side)
        cdef Segment seg = <Segment>seg_obj
        cdef Py_ssize_t s = side
        cdef long long ecn = seg.ecn
        if ecn == IP_ECN_CE:
            self._fv[F_CE + s] += 1
        elif ecn:
            self._fv[F_ECT + s] += 1
        cdef long long flags = seg.flags
        if flags & ECN_FLAGS and not flags & SYN and self.ecn_mode != "accecn":
            if flags & ECE_BIT:
                self._fv[F_ECE + s] += 1
            if flags & CWR_BIT:
                self._fv[F_CWR + s] += 1

    def add_columns(self, rec):
        """Twin of ``ProtocolFacts.add_columns``: the same keys, in the same order (into a
        record dict or ``FlowRecord.line``'s writer)."""
        if type(rec) is dict:
            return self._add_columns_c(<dict>rec, None)
        if type(rec) is _JsonOut:
            return self._add_columns_c(None, <_JsonOut>rec)
        cdef dict columns = {}  # another mapping: the same columns, set in their order
        self._add_columns_c(columns, None)
        for key, value in columns.items():
            rec[key] = value

    cdef int _add_columns_c(self, dict rec, _JsonOut w) except -1:
        """:meth:`add_columns` into a record dict or (``rec`` None) the line writer ``w``,
        counts as C integers (``_col_ll``): ~2 k instructions a record less."""
        cdef long long* ect = &self._fv[F_ECT]
        cdef long long* ce = &self._fv[F_CE]
        cdef long long* ece = &self._fv[F_ECE]
        cdef long long* cwr = &self._fv[F_CWR]
        _col(rec, w, "ecn_negotiated", bool(self.ecn_mode))
        _col(rec, w, "ecn_mode", self.ecn_mode)
        _col_ll(rec, w, "client_ecn_ect_segments", ect[0])
        _col_ll(rec, w, "client_ecn_ce_segments", ce[0])
        _col_ll(rec, w, "client_ecn_ece_segments", ece[0])
        _col_ll(rec, w, "client_ecn_cwr_segments", cwr[0])
        _col_ll(rec, w, "server_ecn_ect_segments", ect[1])
        _col_ll(rec, w, "server_ecn_ce_segments", ce[1])
        _col_ll(rec, w, "server_ecn_ece_segments", ece[1])
        _col_ll(rec, w, "server_ecn_cwr_segments", cwr[1])
        _col(rec, w, "tfo_option", self.tfo_option)
        _col_ll(rec, w, "tfo_syn_data_bytes", self.syn_data_bytes)
        _col(rec, w, "tfo_syn_data_acked", self.syn_data_acked)
        return 0


cdef frozenset _ACCECN_SYNACK = frozenset({0x80, 0x80 | 0x40, 0x100, 0x100 | 0x80})


cdef ProtocolFactsBase _new_protocol_facts(object cls):
    """``cls()`` for the engine's ``ProtocolFacts`` (:func:`_tp_new`)."""
    cdef ProtocolFactsBase f = <ProtocolFactsBase?>_tp_new(cls)
    f._init()
    return f


# ---------------------------------------------------------------- report.flow_record
cdef Py_ssize_t RECORD_ROOM = 256  # report.RECORD_ROOM


def new_record():
    """Twin of ``report._new_record``: an empty dict with room for ``RECORD_ROOM`` keys, so
    a record's ~200 columns go in without a resize."""
    return _PyDict_NewPresized(RECORD_ROOM)


cdef class FlowRecord:
    """Twin of ``report.flow_record`` (and of the ``classify_open``, ``handshake_answered``,
    ``handshake_seen``, ``classify_close`` and ``ts_or_none`` it calls): the same record,
    column for column and in the same order, with the connection's fields read as C fields
    of ``ConnectionBase`` and its per-side pairs in C. The reference reads some sixty
    attributes through Python's attribute lookup (~250 instructions each) and calls five
    helpers for every finished connection. The analyzer's, the peer summary's and the
    protocol facts' columns come from their own methods, as in the reference. A connection
    of another class takes the reference."""

    cdef object reference
    cdef dict addr_cache
    cdef object addr_text_of
    cdef object ts_min, ts_max
    cdef public object encode
    cdef _JsonOut writer
    cdef public long long lines_written
    """Lines :meth:`line` wrote in C (the others took the record dict)."""

    def __init__(self, reference, dict addr_cache, addr_text_of, ts_min, ts_max):
        self.reference = reference
        self.addr_cache = addr_cache
        """``report._addr_texts``, read here; a miss goes through ``addr_text_of``
        (``report.cached_addr_text``), which fills and bounds it."""
        self.addr_text_of = addr_text_of
        self.ts_min = ts_min
        self.ts_max = ts_max

    cdef inline object _addr(self, object addr):
        # An IPv4 or IPv6 address is formatted in C (~400 instructions; ~700 for IPv6):
        # cheaper than the cache's miss (~2,900 for IPv4, ~20 k through ipaddress for
        # IPv6: most clients are new addresses); others go through it.
        text = _ipv4_text(addr)
        if text is not None:
            return text
        text = _ipv6_text(addr)
        if text is not None:
            return text
        text = self.addr_cache.get(addr)
        return text if text is not None else self.addr_text_of(addr)

    cdef inline object _ts(self, object ts_ns):
        return ts_ns if ts_ns is not None and self.ts_min <= ts_ns <= self.ts_max else None

    def __call__(self, conn_obj, anomaly_codes=None):
        if not isinstance(conn_obj, ConnectionBase):
            return self.reference(conn_obj, anomaly_codes)
        return self._build(<ConnectionBase>conn_obj, anomaly_codes, None)

    def enable_lines(self, encode):
        """Let :meth:`line` write records as JSON lines in C. ``encode`` turns a record
        dict into its line (``export.dumps_line``, copied): :meth:`line` uses it for the
        first record (whose columns become the schema the others are held to) and for any
        record the writer does not take. ``export`` calls this only when the writer's
        numbers are orjson's (see :func:`json_float`)."""
        self.encode = encode

    def line(self, conn_obj, anomaly_codes=None):
        """Twin of ``export.flow_line``: ``encode(self(conn, anomaly_codes))``, the record's
        JSON line, written from the connection's fields without the record dict.

        Why: building the ~200-column dict (~85 k instructions) and encoding it (~55 k)
        were a third of an uneventful connection's cost. The columns are the same calls in
        the same order (:meth:`_build` serves both); the writer checks each key against
        the schema learnt from the first record (the same key objects, in the same order)
        and gives up on anything it cannot write exactly as orjson does (a string needing
        an escape, an integer beyond 64 bits, a float that is not finite, another type):
        that record then takes the dict. ``tests/test_report_twin.py`` compares the lines
        of every connection of every capture with the reference's."""
        if self.encode is None:
            raise RuntimeError("FlowRecord.line: enable_lines() was not called")
        cdef _JsonOut w = self.writer
        if w is not None and w.schema is not None and isinstance(conn_obj, ConnectionBase):
            w.reset()
            self._build(<ConnectionBase>conn_obj, anomaly_codes, w)
            out = w.finish()
            if out is not None:
                self.lines_written += 1
                return out
        rec = self(conn_obj, anomaly_codes)
        if w is None:
            self.writer = w = _JsonOut()
            w.learn(rec)
        return self.encode(rec)

    cdef object _build(self, ConnectionBase conn, object anomaly_codes, _JsonOut w):
        """The record (``w`` None: a dict, returned) or its JSON line (written into ``w``,
        None returned): one code for both, so the line cannot drift from the record."""
        cdef long long syn_c = conn._pv[P_PURE_SYN_SENT]
        cdef long long syn_s = conn._pv[P_PURE_SYN_SENT + 1]
        cdef long long synack_s = conn._pv[P_SYNACK_SENT + 1]
        cdef long long pk_c = conn._pv[P_PACKETS]
        cdef long long pk_s = conn._pv[P_PACKETS + 1]
        cdef long long fin_c = conn._pv[P_FIN_FRAME]
        cdef long long fin_s = conn._pv[P_FIN_FRAME + 1]
        done_frame = conn.handshake_done_frame
        open_kind = _open_kind(conn)
        syn_frame = synack_frame = rst_frame = None
        syn_ts = 0
        cdef long long f
        cdef Py_ssize_t ni
        cdef NoteRec* nr
        cdef ConnectionBase packed = conn if isinstance(conn, ConnectionBase) \
            and (<ConnectionBase>conn)._notable is None else None
        if packed is not None:  # the same loop over the packed records: none is made
            for ni in range(packed._nt_n):
                nr = &packed._nt[ni]
                f = nr.flags
                if f & 0x02 and not f & 0x10 and syn_frame is None and not nr.server:
                    syn_frame = nr.frame
                    syn_ts = nr.ts
                elif f & 0x02 and f & 0x10 and synack_frame is None:
                    synack_frame = nr.frame
        else:
            for p in conn.notable:
                f = p.flags
                if f & 0x02 and not f & 0x10 and syn_frame is None and p.sender == "client":
                    syn_frame = p.frame
                    syn_ts = p.ts_ns  # the first notable packet of that frame (one a segment)
                elif f & 0x02 and f & 0x10 and synack_frame is None:
                    synack_frame = p.frame
        first_rst_frame = conn.first_rst_frame
        if first_rst_frame >= 0:
            rst_frame = first_rst_frame
        # handshake_seen
        seen = <str>PyTuple_GET_ITEM(_HANDSHAKE_SEEN, (4 if syn_c else 0) | (
            2 if synack_s else 0) | (1 if done_frame >= 0 or (
                syn_c and not syn_s and conn._pv[P_ANSWERED_FRAME] >= 0) else 0))
        handshake_s = None
        if done_frame >= 0 and syn_frame is not None:
            handshake_s = (conn.handshake_done_ts_ns - syn_ts) / 1_000_000_000
        first_ts = conn.first_ts_ns
        last_ts = _joined(conn.last_ts_c, conn.last_ts_o)
        start_ns = self._ts(first_ts)
        end_ns = self._ts(last_ts)
        duration_s = ((last_ts - first_ts) / 1_000_000_000
                      if (start_ns is None) == (end_ns is None) else None)
        close_kind = _close_kind(conn, open_kind)
        peer = conn.peer
        cdef dict rec = _PyDict_NewPresized(RECORD_ROOM) if w is None else None
        cdef object sink = rec if w is None else w
        _col(rec, w, "flow_id", conn.flow_id)
        _col(rec, w, "client_ip", self._addr(conn.client_addr))
        _col_ll(rec, w, "client_port", conn.client_port)
        _col(rec, w, "server_ip", self._addr(conn.server_addr))
        _col(rec, w, "server_port", conn.server_port)
        _col(rec, w, "ip_version", 4 if len(conn.client_addr) == 4 else 6)
        _col(rec, w, "roles_inferred", conn.roles_inferred)
        _col(rec, w, "incarnation", conn.incarnation)
        _col(rec, w, "first_frame", conn.first_frame)
        if conn.last_frame_o is None:
            _col_ll(rec, w, "last_frame", conn.last_frame_c)
        else:
            _col(rec, w, "last_frame", conn.last_frame_o)
        _col(rec, w, "start_ts", None if start_ns is None else start_ns / 1_000_000_000)
        _col(rec, w, "end_ts", None if end_ns is None else end_ns / 1_000_000_000)
        _col(rec, w, "start_ts_ns", start_ns)
        _col(rec, w, "end_ts_ns", end_ns)
        _col(rec, w, "duration_s", duration_s)
        _col(rec, w, "open", open_kind)
        _col(rec, w, "close", close_kind)
        cdef _Refs r = _refs()
        _col(rec, w, "client_state",
             _state_value(r, (<EndpointMachineBase?>conn.client).state))
        _col(rec, w, "server_state",
             _state_value(r, (<EndpointMachineBase?>conn.server).state))
        # The compiled methods called in C where the classes keep them (each Python method
        # call was ~300 instructions, the reference's conn_state ~1.9 k).
        peer_type = type(peer)
        cdef bint peer_c = isinstance(peer, PeerSummaryBase)
        if peer_c and _keeps_method(peer_type, "conn_state", r.peer_conn_state,
                                    &_CHECK_CONN_STATE):
            _col(rec, w, "conn_state", (<PeerSummaryBase>peer)._conn_state_c())
        else:
            _col(rec, w, "conn_state", peer.conn_state())
        if peer_c and _keeps_method(peer_type, "history", r.peer_history, &_CHECK_HISTORY):
            _col(rec, w, "history", (<PeerSummaryBase>peer)._history_c())
        else:
            _col(rec, w, "history", peer.history())
        if peer_c and _keeps_method(peer_type, "completeness", r.peer_completeness,
                                    &_CHECK_COMPLETENESS):
            _col_ll(rec, w, "completeness", (<PeerSummaryBase>peer)._ws)
        else:
            _col(rec, w, "completeness", peer.completeness())
        _col(rec, w, "end_reason", conn.end_reason)
        _col(rec, w, "syn_frame", syn_frame)
        _col(rec, w, "synack_frame", synack_frame)
        _col(rec, w, "handshake_ack_frame", done_frame if done_frame >= 0 else None)
        _col(rec, w, "handshake_s", handshake_s)
        _col(rec, w, "handshake_inferred", open_kind == "three_way_handshake" and seen != "SSA")
        _col(rec, w, "handshake_seen", seen)
        _col(rec, w, "client_fin_frame", fin_c if fin_c >= 0 else None)
        _col(rec, w, "server_fin_frame", fin_s if fin_s >= 0 else None)
        _col(rec, w, "rst_frame", rst_frame)
        _col_ll(rec, w, "client_packets", pk_c)
        _col_ll(rec, w, "server_packets", pk_s)
        _col_ll(rec, w, "client_payload_bytes", conn._pv[P_PAYLOAD_BYTES])
        _col_ll(rec, w, "server_payload_bytes", conn._pv[P_PAYLOAD_BYTES + 1])
        _col_ll(rec, w, "client_duplicate_frames", conn._pv[P_DUPLICATE_FRAMES])
        _col_ll(rec, w, "server_duplicate_frames", conn._pv[P_DUPLICATE_FRAMES + 1])
        _col_ll(rec, w, "client_syn_count", syn_c)
        _col_ll(rec, w, "server_syn_count", syn_s)
        _col_ll(rec, w, "server_synack_count", synack_s)
        _col_ll(rec, w, "client_rst_count", conn._pv[P_RST_COUNT])
        _col_ll(rec, w, "server_rst_count", conn._pv[P_RST_COUNT + 1])
        _col(rec, w, "events_dropped", conn.events_dropped)
        facts = conn.facts
        if isinstance(facts, ProtocolFactsBase) and _keeps_method(
                type(facts), "add_columns", r.facts_add_columns, &_CHECK_FACTS_COLUMNS):
            (<ProtocolFactsBase>facts)._add_columns_c(rec, w)
        else:
            facts.add_columns(sink)
        analyzer = conn.analyzer
        if isinstance(analyzer, SequenceAnalyzerBase) and _keeps_method(
                type(analyzer), "add_columns", r.analyzer_add_columns,
                &_CHECK_ANALYZER_COLUMNS):
            (<SequenceAnalyzerBase>analyzer)._add_columns_c(sink)
        else:
            analyzer.add_columns(sink)
        holes = peer.holes_filled
        if holes:  # Zeek reassembly holes filled to stay within max_holes
            if w is None:
                rec["evidence_dropped"] += holes
            else:
                w.add("evidence_dropped", holes)
        _col(rec, w, "anomalies", list(anomaly_codes or []))
        return rec


# report.handshake_seen's texts by the bits (SYN, SYN-ACK, ACK) of what was seen: the
# three one-character pieces it joins, without two concatenations a record.
cdef tuple _HANDSHAKE_SEEN = ("...", "..A", ".S.", ".SA", "S..", "S.A", "SS.", "SSA")

# FlowTableBase._sweep_entry's checks: the twin class, then its reference class.
cdef _MethodCheck _CHECK_REMOVE[2]
cdef _MethodCheck _CHECK_REMEMBER_END[2]


cdef bint _keeps_reference(object cls, str name, _MethodCheck* check) except -1:
    """``getattr(cls, name) is getattr(cls.__reference__, name)`` (the twin class keeps the
    reference's method), remembered as :func:`_keeps_method` does for both classes
    (``check[0]`` the twin, ``check[1]`` the reference: a change to either is seen)."""
    cdef PyObject* ref_seen = check[1].seen
    if _type_unchanged(cls, &check[0].seen, &check[0].tag) and ref_seen != NULL \
            and _type_unchanged(<object>ref_seen, &check[1].seen, &check[1].tag):
        return True
    ref = cls.__reference__
    if getattr(cls, name) is not getattr(ref, name):
        return False
    _type_remember(cls, &check[0].seen, &check[0].tag)
    _type_remember(ref, &check[1].seen, &check[1].tag)
    return True


# FlowRecord._build's checks that the classes keep the compiled methods it calls in C.
cdef _MethodCheck _CHECK_CONN_STATE, _CHECK_HISTORY, _CHECK_COMPLETENESS
cdef _MethodCheck _CHECK_FACTS_COLUMNS, _CHECK_ANALYZER_COLUMNS


cdef str _open_kind(ConnectionBase conn):
    """Twin of ``report.classify_open`` (with ``handshake_answered``) on the C fields."""
    cdef long long syn_c = conn._pv[P_PURE_SYN_SENT]
    cdef long long syn_s = conn._pv[P_PURE_SYN_SENT + 1]
    cdef long long synack_s = conn._pv[P_SYNACK_SENT + 1]
    if syn_c and (syn_s or conn.self_connect):
        return "simultaneous_open"
    if conn.handshake_done_frame >= 0 or (syn_c and conn._pv[P_ANSWERED_FRAME] >= 0) or (
            synack_s and conn._pv[P_ANSWERED_FRAME + 1] >= 0 and not conn._pv[P_PACKETS]):
        return "three_way_handshake"
    if syn_c or syn_s or conn._pv[P_SYNACK_SENT] or synack_s:
        return "not_established"
    return "midstream"


cdef str _close_kind(ConnectionBase conn, str open_kind):
    """Twin of ``report.classify_close`` on the C fields."""
    cdef long long fin_c = conn._pv[P_FIN_FRAME]
    cdef long long fin_s = conn._pv[P_FIN_FRAME + 1]
    cdef long long synack_s = conn._pv[P_SYNACK_SENT + 1]
    cdef long long first_rst_frame = conn.first_rst_frame
    cdef bint c_fin = fin_c >= 0
    cdef bint s_fin = fin_s >= 0
    if conn.self_connect:
        s_fin = c_fin
    rst_sender = conn.first_rst_sender
    if open_kind == "not_established" and not synack_s and not conn._pv[P_PACKETS + 1] \
            and not rst_sender and not c_fin:
        return "unanswered"
    if rst_sender == "server" and not synack_s and conn._pv[P_PURE_SYN_SENT] \
            and open_kind == "not_established":
        return "refused"
    if rst_sender and not (c_fin and fin_c < first_rst_frame
                           and s_fin and fin_s < first_rst_frame):
        return "rst_by_client" if rst_sender == "client" else "rst_by_server"
    if c_fin and s_fin:
        return "graceful"
    if c_fin or s_fin:
        return "half_closed_at_capture_end"
    return "open_at_capture_end"


cpdef object probe_outcome(object conn_obj):
    """Twin of ``detectors.scans.probe_outcome`` on the C fields (the reference read five
    per-side pairs through properties, each a new object: ~3 k instructions for every
    connection, which the scan detector sees all of); another connection type takes the
    reference."""
    if not isinstance(conn_obj, ConnectionBase):
        from tcptrace_py.detectors.scans import reference_probe_outcome

        return reference_probe_outcome(conn_obj)
    cdef ConnectionBase conn = <ConnectionBase>conn_obj
    if not conn._pv[P_PURE_SYN_SENT] or conn.self_connect or conn._pv[P_PAYLOAD_BYTES] \
            or conn._pv[P_PAYLOAD_BYTES + 1]:
        return None
    close = _close_kind(conn, _open_kind(conn))
    if close == "refused" or close == "unanswered":
        return close
    if conn.handshake_done_frame < 0:
        return "abandoned" if conn._pv[P_SYNACK_SENT + 1] else None
    return "open"


cdef inline int _col(dict rec, _JsonOut w, object key, object value) except -1:
    """One record column: into the dict, or written by ``w`` (``FlowRecord._build``)."""
    if w is None:
        rec[key] = value
    else:
        w.put(key, value)
    return 0


cdef inline int _col_ll(dict rec, _JsonOut w, object key, long long value) except -1:
    """:func:`_col` of a C integer: the writer keeps it as one (``_JsonOut.put_ll``)."""
    if w is None:
        rec[key] = value
    else:
        w.put_ll(key, value)
    return 0


cdef extern from "Python.h":
    char* PyOS_double_to_string(double val, char format_code, int precision, int flags,
                                int* ptype) except NULL
    int Py_DTSF_ADD_DOT_0
    bint PyUnicode_IS_ASCII(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)
    bint PyFloat_CheckExact(object o)
    double PyFloat_AS_DOUBLE(object o)
    bint PyUnicode_CheckExact(object o)
    bint PyList_CheckExact(object o)
    void* PyMem_Realloc(void* p, size_t n)

cdef extern from "math.h":
    bint isfinite(double x) nogil


cdef double _POW10[10]
_POW10[:] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9]
cdef long long _IPOW10[10]
_IPOW10[:] = [1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000]

cdef extern from "math.h":
    double floor(double x) nogil


cdef Py_ssize_t _float_short(double x, char* out) noexcept:
    """``x`` in fixed notation with the fewest fraction digits (at most 9) that read back
    as ``x``, into ``out``: ``repr``'s shortest digits, in ~100 instructions instead of
    dtoa's ~4,000. 0 when this does not decide (then :func:`_float_text` asks dtoa):
    ``|x|`` outside [1e-5, 1e15), more than 9 fraction digits, or two decimals of the
    fewest digits reading back as ``x`` (dtoa picks the nearer).

    Why exact: for p = 0, 1, ... the candidates are the integers k next to ``x * 10**p``
    (that product may be off by one unit of its last place, so three of them); ``k`` and
    ``10**p`` are exact doubles (k < 2**53), so ``k / 10**p`` is the correctly rounded
    double of the decimal k * 10**-p: the decimal reads back as ``x`` exactly when that
    quotient equals ``x``. The first p with one such k gives the fewest digits."""
    cdef double a = -x if x < 0 else x
    cdef double scaled, q, product
    cdef long long k, found, whole, frac
    cdef int p, hits, j
    cdef Py_ssize_t n = 0, w
    cdef char tmp[24]
    if not (1e-5 <= a < 1e15):
        return 0
    for p in range(10):
        product = a * _POW10[p]
        scaled = floor(product)
        if scaled >= 9007199254740992.0:  # 2**53
            return 0
        # A k below with k / 10**p == x lies within ~2.5 units of the product's last place
        # of it (the quotient's and the product's roundings); when the nearest integer is
        # farther than 2e-15 of the product (9 such units), none can: the three divisions
        # are skipped (most p before the right one).
        if fabs(product - floor(product + 0.5)) > product * 2e-15:
            continue
        hits = 0
        found = 0
        for j in range(-1, 2):
            k = <long long>scaled + j
            if k < 0:
                continue
            q = <double>k / _POW10[p]
            if q == a:
                hits += 1
                found = k
        if hits > 1:
            return 0
        if hits == 1:
            if x < 0:
                out[0] = b'-'
                n = 1
            whole = found // _IPOW10[p]
            frac = found % _IPOW10[p]
            w = 0
            while True:
                tmp[w] = <char>(48 + whole % 10)
                whole //= 10
                w += 1
                if whole == 0:
                    break
            while w:
                w -= 1
                out[n] = tmp[w]
                n += 1
            out[n] = b'.'
            n += 1
            if p == 0:
                out[n] = b'0'
                return n + 1
            for j in range(p - 1, -1, -1):
                out[n + j] = <char>(48 + frac % 10)
                frac //= 10
            return n + p
    return 0


cdef Py_ssize_t _float_text(double x, char* out) noexcept:
    """``x`` (finite) as orjson 3.13 writes it, into ``out`` (at least 40 bytes); its
    length. Python's shortest round-trip digits (``repr``), in orjson's layout: fixed
    notation from 1e-5 up to 1e16 (``repr`` switches at 1e-4: ``1.5e-05`` is
    ``0.000015`` here), else a mantissa and an exponent without zero padding
    (``1.5e-7``; ``1e+16`` as ``repr``). ``export`` checks this against the installed
    orjson before using it (:func:`json_float`)."""
    cdef Py_ssize_t n = _float_short(x, out)
    if n:
        return n
    cdef char* r = PyOS_double_to_string(x, b'r', 0, Py_DTSF_ADD_DOT_0, NULL)
    cdef Py_ssize_t i = 0, e = -1, k, m
    cdef int exp10 = 0
    while r[i]:
        if r[i] == b'e':
            e = i
        i += 1
    if e < 0 or r[e + 1] == b'+':
        memcpy(out, r, i)
        PyMem_Free(r)
        return i
    k = e + 2  # the exponent's digits (negative exponent)
    while r[k]:
        exp10 = exp10 * 10 + (r[k] - 48)
        k += 1
    if exp10 == 5:
        # 0.0000 then the mantissa's digits: d[.ddd]e-05 is 0.0000dddd
        m = 0
        if r[0] == b'-':
            out[n] = b'-'
            n += 1
            m = 1
        memcpy(out + n, b"0.0000", 6)
        n += 6
        for k in range(m, e):
            if r[k] != b'.':
                out[n] = r[k]
                n += 1
    else:
        memcpy(out, r, e)
        n = e
        n += snprintf(out + n, 8, "e-%d", exp10)
    PyMem_Free(r)
    return n


def json_float(double x):
    """:func:`_float_text` of ``x`` as bytes (None when not finite): what the line writer
    puts for a float, which ``export`` and the tests hold to ``orjson.dumps(x)``."""
    cdef char buf[48]
    if not isfinite(x):
        return None
    return PyBytes_FromStringAndSize(buf, _float_text(x, buf))


@cython.final
cdef class _JsonOut:
    """A record's JSON line, its columns collected then written (``FlowRecord.line``):
    the bytes ``orjson.dumps(record, option=OPT_APPEND_NEWLINE)`` gives for the record
    dict the same column writes would make, or nothing (:attr:`failed`) when a column is
    not one it writes exactly so.

    Keys: held to :attr:`schema`, the first record's keys in their order (``learn``).
    Each value goes into the slot of its key; a key set again replaces its value and
    keeps its place, as in a dict (``client_packets``: the record's count, then the
    analyzer's). A key seen for the first time must be the schema's next one (the same
    object, or an equal one), so the line's order is the dict's. Values: None, exact
    bools, ints within 64 bits, finite floats (:func:`_float_text`), exact ASCII strings
    needing no escape, and lists of these."""

    cdef char* buf
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef tuple schema
    cdef bytes prefixes
    """Every key's prefix (``{"key":`` then ``,"key":``) end to end, then 32 zero bytes
    (a short prefix is copied as two 16-byte moves); ``prefix_end[j]`` is where key j's
    ends."""
    cdef Py_ssize_t* prefix_end
    cdef dict index
    cdef PyObject** slots
    cdef PyObject** key_ptrs
    """The schema's keys (borrowed from :attr:`schema`), for the in-order test of
    :meth:`_slot` without the tuple's checks."""
    cdef object run_keys0, run_keys1
    cdef Py_ssize_t run_at[2]
    cdef Py_ssize_t run_lead_slot[2]
    """:meth:`run_start`'s last two verified runs (a record's client and server columns):
    the keys tuple (held, so never another tuple at the same address), the ``next_new``
    it started at, and its one leading key's slot (-1: none). The same tuple at the same
    place of the same schema is the same run: only the leading key's slot is tested
    again."""
    cdef unsigned char* kinds
    """What slot j holds: an object (``K_OBJ``, ``slots[j]``), else a number kept as a C
    integer in ``ints[j]``, or None, True or False (``slots[j]`` is then the borrowed
    ``_TYPED`` marker): a column its producer had as a C value is written without a Python
    object (:meth:`put_ll`, :meth:`put_dec`), and :meth:`put` keeps None, the bools and
    the common ints so (no reference to hold and release, no type test in
    :meth:`finish`)."""
    cdef long long* ints
    cdef Py_ssize_t n_keys
    cdef Py_ssize_t next_new
    cdef bint failed
    cdef bint dirty
    """Slots may hold values: from :meth:`reset` until :meth:`finish` has dropped them
    (a record whose columns raised leaves them for the next ``reset``)."""
    # The previous line (see :meth:`finish`): its text (``pbuf``), where each column's
    # text began in it (``poff[j]``; ``poff[n_keys]`` where the last one ended) and what
    # each column held (``pkinds``, ``pints``); ``off`` receives the current line's
    # offsets, then the two swap. ``prev_ok``: the previous line was written whole.
    cdef char* pbuf
    cdef Py_ssize_t pcap
    cdef Py_ssize_t* off
    cdef Py_ssize_t* poff
    cdef unsigned char* pkinds
    cdef long long* pints
    cdef bint prev_ok

    def __cinit__(self):
        self.cap = self.pcap = 8192
        self.buf = <char*>PyMem_Malloc(self.cap)
        self.pbuf = <char*>PyMem_Malloc(self.pcap)
        if self.buf is NULL or self.pbuf is NULL:
            raise MemoryError()

    def __dealloc__(self):
        self._clear()
        self._free_columns()
        PyMem_Free(self.buf)
        self.buf = NULL
        PyMem_Free(self.pbuf)
        self.pbuf = NULL

    cdef void _free_columns(self) noexcept:
        """Free the arrays of the schema's columns (slots, kinds, numbers, prefix ends,
        keys; the previous line's offsets, kinds and numbers), leaving no column and no
        previous line. Call :meth:`_clear` first: the slots' objects are not released."""
        PyMem_Free(self.slots)
        PyMem_Free(self.kinds)
        PyMem_Free(self.ints)
        PyMem_Free(self.prefix_end)
        PyMem_Free(self.key_ptrs)
        PyMem_Free(self.off)
        PyMem_Free(self.poff)
        PyMem_Free(self.pkinds)
        PyMem_Free(self.pints)
        self.slots = self.key_ptrs = NULL
        self.kinds = self.pkinds = NULL
        self.ints = self.pints = NULL
        self.prefix_end = self.off = self.poff = NULL
        self.n_keys = 0
        self.prev_ok = False

    def learn(self, dict rec):
        """Take ``rec``'s keys as the schema, if every one is an exact ASCII string
        needing no escape (else the writer stays off)."""
        keys = tuple(rec)
        prefixes = []
        for j, key in enumerate(keys):
            if not PyUnicode_CheckExact(key) or not _plain_ascii(key):
                return
            prefixes.append((b"{" if j == 0 else b",") + b'"' + key.encode() + b'":')
        self._clear()
        self._free_columns()  # n_keys 0 until the new arrays are in place
        self.slots = <PyObject**>PyMem_Calloc(max(len(keys), 1), sizeof(PyObject*))
        self.prefix_end = <Py_ssize_t*>PyMem_Calloc(max(len(keys), 1), sizeof(Py_ssize_t))
        self.kinds = <unsigned char*>PyMem_Calloc(max(len(keys), 1), 1)
        self.ints = <long long*>PyMem_Calloc(max(len(keys), 1), sizeof(long long))
        self.key_ptrs = <PyObject**>PyMem_Calloc(max(len(keys), 1), sizeof(PyObject*))
        self.off = <Py_ssize_t*>PyMem_Calloc(len(keys) + 1, sizeof(Py_ssize_t))
        self.poff = <Py_ssize_t*>PyMem_Calloc(len(keys) + 1, sizeof(Py_ssize_t))
        self.pkinds = <unsigned char*>PyMem_Calloc(max(len(keys), 1), 1)
        self.pints = <long long*>PyMem_Calloc(max(len(keys), 1), sizeof(long long))
        if self.slots is NULL or self.prefix_end is NULL or self.kinds is NULL \
                or self.ints is NULL or self.key_ptrs is NULL or self.off is NULL \
                or self.poff is NULL or self.pkinds is NULL or self.pints is NULL:
            raise MemoryError()
        for j, key in enumerate(keys):
            self.key_ptrs[j] = <PyObject*>key  # borrowed: the schema holds them
        cdef Py_ssize_t end = 0
        for j, prefix in enumerate(prefixes):
            end += len(prefix)
            self.prefix_end[j] = end
        self.schema = keys
        self.run_keys0 = self.run_keys1 = None  # runs verified against another schema
        # 32 bytes of padding: finish copies a short prefix as two fixed 16-byte moves
        self.prefixes = b"".join(prefixes) + bytes(32)
        self.index = {key: j for j, key in enumerate(keys)}
        self.n_keys = len(keys)

    cdef void _clear(self) noexcept:
        """Drop the collected values."""
        cdef Py_ssize_t j
        if self.slots is not NULL:
            for j in range(self.n_keys):
                if self.slots[j] is not NULL:
                    self._drop(j)

    cdef inline void _drop(self, Py_ssize_t j) noexcept:
        """Empty slot ``j`` (its object released; a C number needs nothing)."""
        cdef PyObject* v = self.slots[j]
        self.slots[j] = NULL
        if self.kinds[j] == K_OBJ:
            Py_XDECREF(v)
        else:
            self.kinds[j] = K_OBJ

    cdef void reset(self) noexcept:
        if self.dirty:
            self._clear()
        self.dirty = True
        self.next_new = 0
        self.failed = False

    cdef inline Py_ssize_t _slot(self, object key) except -2:
        """The slot of column ``key``, emptied for its new value; -1 when the line
        fails (see the class docstring; then or already failed)."""
        cdef Py_ssize_t j = self.next_new
        # The common case: the schema's next key. Its slot is empty: every slot from
        # ``next_new`` on is (only a key before it can have been set since ``reset``).
        if j < self.n_keys and self.key_ptrs[j] == <PyObject*>key and not self.failed:
            self.next_new = j + 1
            return j
        return self._slot_other(key)

    cdef Py_ssize_t _slot_other(self, object key) except -2:
        """:meth:`_slot` of a key set again, or not the schema's next, or after a
        failure."""
        if self.failed:
            return -1
        cdef Py_ssize_t j = self.next_new
        if j < self.n_keys and (<PyObject*>key == self.slots_key(j)):
            self.next_new = j + 1
        else:
            found = self.index.get(key)
            if found is None:
                self.failed = True
                return -1
            j = <Py_ssize_t>found
            if self.slots[j] is NULL:  # first seen: must come next, as in the schema
                if j != self.next_new:
                    self.failed = True
                    return -1
                self.next_new = j + 1
        if self.slots[j] is not NULL:
            self._drop(j)
        return j

    cdef int put(self, object key, object value) except -1:
        """Collect column ``key`` (see the class docstring)."""
        cdef Py_ssize_t j = self._slot(key)
        if j >= 0:
            self._store(j, value)
        return 0

    cdef Py_ssize_t run_start(self, tuple keys, Py_ssize_t* lead) except -2:
        """For columns put in the order of ``keys``: when ``keys[lead:]`` are the schema's
        next keys (none set yet, so their slots are empty), ``base``, the slot of
        ``keys[0]`` were the run whole (column i's slot is ``base + i``), and ``lead`` is
        set to the number of leading keys that are not the schema's next (keys set again:
        ``client_packets`` is the record's count, then the analyzer's). The caller puts
        those through :meth:`put`, then stores the others straight into their slots
        (:meth:`_store`, :meth:`_store_number`): the keys' order checked once for the run.
        -1 otherwise, or after a failure: every column goes through :meth:`put`."""
        cdef Py_ssize_t j = self.next_new, n = PyTuple_GET_SIZE(keys), i, k = 0, c
        if self.failed or j >= self.n_keys:
            return -1
        for c in range(2):
            if (self.run_keys0 if c == 0 else self.run_keys1) is keys \
                    and self.run_at[c] == j:
                i = self.run_lead_slot[c]
                if i < 0 or self.slots[i] is not NULL:  # its leading key, if any, is set
                    k = 1 if i >= 0 else 0
                    self.next_new = j + n - k
                    lead[0] = k
                    return j - k
        while k < n and self.key_ptrs[j] != PyTuple_GET_ITEM(keys, k):
            k += 1
        if k == n or j + n - k > self.n_keys:
            return -1
        for i in range(k + 1, n):
            if self.key_ptrs[j + i - k] != PyTuple_GET_ITEM(keys, i):
                return -1
        for i in range(k):  # each leading key set already: put replaces it in its place
            found = self.index.get(<object>PyTuple_GET_ITEM(keys, i))
            if found is None or self.slots[<Py_ssize_t>found] is NULL:
                return -1
        if k <= 1:  # remembered in place of the older of the two
            self.run_keys0 = self.run_keys1
            self.run_at[0] = self.run_at[1]
            self.run_lead_slot[0] = self.run_lead_slot[1]
            self.run_keys1 = keys
            self.run_at[1] = j
            self.run_lead_slot[1] = <Py_ssize_t>found if k else -1
        self.next_new = j + n - k
        lead[0] = k
        return j - k

    cdef inline int _store_number(self, Py_ssize_t j, unsigned char kind,
                                  long long value) except -1:
        """Slot ``j`` (empty) holds the C number ``value`` of ``kind``."""
        self.slots[j] = <PyObject*>_TYPED
        self.kinds[j] = kind
        self.ints[j] = value
        return 0

    cdef inline int _store(self, Py_ssize_t j, object value) except -1:
        """Slot ``j`` (empty) holds ``value``: None, the bools and the common ints as
        kinds (see the class docstring), any other object by reference."""
        cdef long long x
        if value is None:
            self.kinds[j] = K_NULL
        elif value is True:
            self.kinds[j] = K_TRUE
        elif value is False:
            self.kinds[j] = K_FALSE
        elif PyLong_CheckExact(value) and _ll_fast(value, &x):
            self.kinds[j] = K_INT
            self.ints[j] = x
        else:
            Py_INCREF(value)
            self.slots[j] = <PyObject*>value
            return 0
        self.slots[j] = <PyObject*>_TYPED
        return 0

    cdef inline int _put_number(self, object key, unsigned char kind,
                                long long value) except -1:
        """Collect column ``key`` as the C number ``value`` of ``kind``."""
        cdef Py_ssize_t j = self._slot(key)
        if j >= 0:
            self._store_number(j, kind, value)
        return 0

    cdef int put_ll(self, object key, long long value) except -1:
        """:meth:`put` of the int ``value``, kept as a C integer."""
        return self._put_number(key, K_INT, value)

    cdef int put_dec(self, object key, long long k, int digits) except -1:
        """:meth:`put` of the float ``k / 10**digits`` (``digits`` 1 or 3), the double
        nearest that decimal, kept as the integer ``k``: written without a float object and
        without the search for its shortest digits (:func:`_dec_write`). For ``0 <= k <
        2**52`` (what ``_round_k`` gives) the decimal's digits are the double's shortest
        (``repr``'s): the double lies within half a unit of its last place of the decimal,
        that unit is below ``k / 10**digits * 2**-52 < 10**-digits``, and every other
        decimal of as many fraction digits or fewer is ``10**-digits`` away or more."""
        return self._put_number(key, K_DEC3 if digits == 3 else K_DEC1, k)

    cdef object _boxed(self, Py_ssize_t j):
        """Slot ``j``'s value as the object the record dict would hold."""
        cdef unsigned char kind = self.kinds[j]
        if kind == K_OBJ:
            return <object>self.slots[j]
        if kind == K_INT:
            return self.ints[j]
        if kind == K_NULL:
            return None
        if kind == K_TRUE or kind == K_FALSE:
            return kind == K_TRUE
        return <double>self.ints[j] / (1000.0 if kind == K_DEC3 else 10.0)

    cdef inline PyObject* slots_key(self, Py_ssize_t j) noexcept:
        return <PyObject*>(<tuple>self.schema)[j]

    cdef int add(self, object key, object amount) except -1:
        """``rec[key] += amount`` for a key already set (else the line fails)."""
        if self.failed:
            return 0
        found = self.index.get(key)
        if found is None or self.slots[<Py_ssize_t>found] is NULL:
            self.failed = True
            return 0
        return self.put(key, self._boxed(<Py_ssize_t>found) + amount)

    def __setitem__(self, key, value):
        self.put(key, value)

    def set_number(self, key, long long value, int digits=0):
        """From Python (the tests): :meth:`put_ll` (``digits`` 0) or :meth:`put_dec`."""
        if digits:
            self.put_dec(key, value, digits)
        else:
            self.put_ll(key, value)

    def begin(self):
        """From Python (the tests): start a line, as ``FlowRecord.line`` does."""
        self.reset()

    def end(self):
        """From Python (the tests): :meth:`finish`."""
        return self.finish()

    def __getitem__(self, key):
        found = self.index.get(key)
        if found is None or self.slots[<Py_ssize_t>found] is NULL:
            raise KeyError(key)
        return self._boxed(<Py_ssize_t>found)

    cdef inline int _room(self, Py_ssize_t more) except -1:
        if self.n + more <= self.cap:
            return 0
        return self._grow(more)

    cdef int _grow(self, Py_ssize_t more) except -1:
        cdef Py_ssize_t need = self.n + more
        cdef Py_ssize_t cap = self.cap
        cdef char* grown
        while cap < need:
            cap *= 2
        grown = <char*>PyMem_Realloc(self.buf, cap)
        if grown is NULL:
            raise MemoryError()
        self.buf = grown
        self.cap = cap
        return 0

    cdef inline int _raw(self, const char* data, Py_ssize_t size) except -1:
        self._room(size)
        memcpy(self.buf + self.n, data, size)
        self.n += size
        return 0

    cdef bint _value(self, object v) except -1:
        """Write ``v``; False when it is not a value this writer takes."""
        cdef long long x
        cdef int overflow = 0
        cdef Py_ssize_t size
        cdef double d
        if v is None:
            self._raw("null", 4)
        elif v is True:
            self._raw("true", 4)
        elif v is False:
            self._raw("false", 5)
        elif PyLong_CheckExact(v):
            x = _exact_ll(v, &overflow)
            if overflow:
                return False
            self._room(24)
            self.n += _ll_write(x, self.buf + self.n)
        elif PyFloat_CheckExact(v):
            d = PyFloat_AS_DOUBLE(v)
            if not isfinite(d):
                return False
            self._room(48)
            self.n += _float_text(d, self.buf + self.n)
        elif PyUnicode_CheckExact(v):
            if not _plain_ascii(v):
                return False
            size = PyUnicode_GET_LENGTH(v)
            self._room(size + 2)
            self.buf[self.n] = b'"'
            memcpy(self.buf + self.n + 1, PyUnicode_DATA(v), size)
            self.buf[self.n + 1 + size] = b'"'
            self.n += size + 2
        elif PyList_CheckExact(v):
            self._raw("[", 1)
            for k in range(len(<list>v)):
                if k:
                    self._raw(",", 1)
                if not self._value((<list>v)[k]):
                    return False
            self._raw("]", 1)
        else:
            return False
        return True

    cdef inline bint _as_before(self, Py_ssize_t j) noexcept:
        """Column ``j`` holds the C value it held in the previous line (written whole):
        the same kind, and the same number for a numeric kind. Its text (key and value)
        is then the previous line's."""
        cdef unsigned char kind = self.kinds[j]
        return kind != K_OBJ and kind == self.pkinds[j] and (
            kind >= K_NULL or self.ints[j] == self.pints[j])

    cdef object finish(self):
        """The line (bytes with its newline), or None when a column failed or was missing;
        the collected values are dropped either way.

        Why the previous line: consecutive records share most of their C-valued columns
        (zero counters, false flags, nulls, the same MSS: on average 113 of 197 columns
        in 25 runs on 2m.pcap, 167 in 8 runs on uneventful_20k.pcap). A run of columns
        each holding what it held in the previous line is that line's text of the run,
        copied at once instead of written column by column."""
        cdef Py_ssize_t j = 0, i, m, start, end, size
        cdef const char* prefixes
        cdef PyObject* v
        cdef unsigned char kind
        cdef bint ok = not self.failed and self.schema is not None \
            and self.next_new == self.n_keys
        cdef bint reuse = self.prev_ok
        cdef Py_ssize_t* off = self.off
        cdef Py_ssize_t* poff = self.poff
        cdef char* swap_buf
        cdef Py_ssize_t swap_cap
        self.prev_ok = False  # until this line is whole
        self.n = 0
        if ok:
            prefixes = PyBytes_AS_STRING(self.prefixes)
            while j < self.n_keys:
                if reuse and self._as_before(j):
                    i = j + 1
                    while i < self.n_keys and self._as_before(i):
                        i += 1
                    size = poff[i] - poff[j]
                    self._room(size)
                    memcpy(self.buf + self.n, self.pbuf + poff[j], size)
                    for m in range(j, i):
                        off[m] = self.n + poff[m] - poff[j]
                        self.kinds[m] = K_OBJ
                        self.slots[m] = NULL
                    self.n += size
                    j = i
                    continue
                off[j] = self.n
                start = self.prefix_end[j - 1] if j else 0
                end = self.prefix_end[j]
                if end - start <= 32:  # two fixed-size moves, not a call to memcpy
                    self._room(32)
                    memcpy(self.buf + self.n, prefixes + start, 16)
                    memcpy(self.buf + self.n + 16, prefixes + start + 16, 16)
                    self.n += end - start
                else:
                    self._raw(prefixes + start, end - start)
                kind = self.kinds[j]
                self.pkinds[j] = kind
                if kind != K_OBJ:
                    self.pints[j] = self.ints[j]
                    self._room(32)
                    if kind == K_INT:
                        self.n += _ll_write(self.ints[j], self.buf + self.n)
                    elif kind == K_NULL:
                        memcpy(self.buf + self.n, b"null", 4)
                        self.n += 4
                    elif kind == K_FALSE:
                        memcpy(self.buf + self.n, b"false", 5)
                        self.n += 5
                    elif kind == K_TRUE:
                        memcpy(self.buf + self.n, b"true", 4)
                        self.n += 4
                    else:
                        self.n += _dec_write(self.ints[j], 3 if kind == K_DEC3 else 1,
                                             self.buf + self.n)
                    self.kinds[j] = K_OBJ
                    self.slots[j] = NULL
                    j += 1
                    continue
                v = self.slots[j]
                if not self._value(<object>v):
                    ok = False
                    break
                self.slots[j] = NULL  # dropped as written: no second pass over the slots
                Py_XDECREF(v)
                j += 1
        if not ok:
            self._clear()
            self.dirty = False
            self.failed = True
            return None
        self.dirty = False
        off[self.n_keys] = self.n
        self._raw("}\n", 2)
        line = PyBytes_FromStringAndSize(self.buf, self.n)
        # This line becomes the previous one.
        swap_buf, swap_cap = self.buf, self.cap
        self.buf, self.cap = self.pbuf, self.pcap
        self.pbuf, self.pcap = swap_buf, swap_cap
        self.off, self.poff = poff, off
        self.prev_ok = True
        return line


cdef bint _plain_ascii(object s) except -1:
    """An exact str of ASCII characters none of which JSON escapes (the quote, the
    backslash, U+0000-U+001F): written between quotes as it is."""
    if not PyUnicode_IS_ASCII(s):
        return False
    cdef const unsigned char* p = <const unsigned char*>PyUnicode_DATA(s)
    cdef Py_ssize_t k, size = PyUnicode_GET_LENGTH(s)
    for k in range(size):
        if p[k] < 0x20 or p[k] == 34 or p[k] == 92:
            return False
    return True


# ---------------------------------------------------------------- segment.addr_text
cdef extern from "Python.h":
    object PyUnicode_DecodeASCII(const char* s, Py_ssize_t size, const char* errors)


cdef object _ipv4_text(object addr):
    """``segment.addr_text`` of a 4-byte address, formatted in C; None for anything else."""
    cdef char buf[16]
    cdef const unsigned char* p
    cdef int i, n = 0
    cdef unsigned int b
    if type(addr) is not bytes or PyBytes_GET_SIZE(addr) != 4:
        return None
    p = <const unsigned char*>PyBytes_AS_STRING(addr)
    for i in range(4):  # "%u.%u.%u.%u" by hand: snprintf took ~1,500 instructions
        if i:
            buf[n] = b'.'
            n += 1
        b = p[i]
        if b >= 100:
            buf[n] = <char>(48 + b // 100)
            n += 1
        if b >= 10:
            buf[n] = <char>(48 + (b // 10) % 10)
            n += 1
        buf[n] = <char>(48 + b % 10)
        n += 1
    return PyUnicode_DecodeASCII(buf, n, NULL)


cdef object _ipv6_text(object addr):
    """``segment.addr_text`` of a 16-byte address (``str(ipaddress.IPv6Address(addr))``,
    RFC 5952: hextets in lower-case hex without leading zeros, the longest run of two or
    more zero hextets, the first of equal ones, written ``::``), formatted in C; None for
    anything else, and for an IPv4-mapped address (``::ffff:0:0/96``), whose text
    depends on the Python version (3.13 writes its last 32 bits dotted)."""
    cdef char buf[48]
    cdef const unsigned char* p
    cdef unsigned int h[8]
    cdef int i, n = 0, run = 0, run_start = -1, best = 0, best_start = -1
    if type(addr) is not bytes or PyBytes_GET_SIZE(addr) != 16:
        return None
    p = <const unsigned char*>PyBytes_AS_STRING(addr)
    for i in range(8):
        h[i] = (p[2 * i] << 8) | p[2 * i + 1]
    if h[0] == 0 and h[1] == 0 and h[2] == 0 and h[3] == 0 and h[4] == 0 \
            and h[5] == 0xFFFF:
        return None
    for i in range(8):
        if h[i] == 0:
            if run_start < 0:
                run_start = i
            run += 1
            if run > best:
                best = run
                best_start = run_start
        else:
            run = 0
            run_start = -1
    if best < 2:
        best_start = -1
    i = 0
    while i < 8:
        if i == best_start:
            buf[n] = b':'
            buf[n + 1] = b':'
            n += 2
            i += best
            continue
        if n and buf[n - 1] != b':':
            buf[n] = b':'
            n += 1
        n += _hex_digits(h[i], buf + n)
        i += 1
    return PyUnicode_DecodeASCII(buf, n, NULL)


cdef const char* _DIGIT_PAIRS = (
    b"00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    b"40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    b"8081828384858687888990919293949596979899")


cdef inline Py_ssize_t _ll_write(long long x, char* out) noexcept:
    """Write ``x`` in decimal at ``out`` (room for 20 bytes); return its length (the
    text of ``b"%d" % x``). The digits are counted first, so they are written in place,
    two at a time from a table (a record's ~130 integers are mostly one digit: that
    case first)."""
    if 0 <= x < 10:
        out[0] = <char>(48 + x)
        return 1
    cdef unsigned long long u = <unsigned long long>(-(x + 1)) + 1 if x < 0 \
        else <unsigned long long>x
    cdef unsigned long long t = u
    cdef Py_ssize_t size = 1, sign = 0, i, r
    if x < 0:
        out[0] = b'-'
        sign = 1
    while t >= 10:
        t //= 10
        size += 1
    i = sign + size
    while u >= 100:
        r = <Py_ssize_t>(u % 100) * 2
        u //= 100
        i -= 2
        out[i] = _DIGIT_PAIRS[r]
        out[i + 1] = _DIGIT_PAIRS[r + 1]
    if u >= 10:
        r = <Py_ssize_t>u * 2
        out[i - 2] = _DIGIT_PAIRS[r]
        out[i - 1] = _DIGIT_PAIRS[r + 1]
    else:
        out[i - 1] = <char>(48 + u)
    return sign + size


def spliced_flow_id(line, long long old, long long new):
    """Twin of ``encoded.spliced_flow_id``: ``line`` (bytes, or a buffer such as a view of
    a ``--jobs`` worker's batch) with its leading flow id ``old`` written as ``new``, or
    None when the line does not begin ``{"flow_id":OLD`` followed by ``,`` or ``}``. One
    copy of the line (the reference slices, formats and joins)."""
    cdef Py_buffer view
    PyObject_GetBuffer(line, &view, PyBUF_SIMPLE)
    try:
        return _spliced(<const char*>view.buf, view.len, old, new)
    finally:
        PyBuffer_Release(&view)


cdef object _spliced(const char* src, Py_ssize_t n, long long old, long long new):
    cdef char old_d[24]
    cdef char new_d[24]
    cdef Py_ssize_t ol = _ll_write(old, old_d), nl = _ll_write(new, new_d)
    cdef Py_ssize_t head = 11  # len(b'{"flow_id":')
    if n < head + ol + 1 or memcmp(src, b'{"flow_id":', head) != 0 \
            or memcmp(src + head, old_d, ol) != 0 \
            or (src[head + ol] != b',' and src[head + ol] != b'}'):
        return None
    out = PyBytes_FromStringAndSize(NULL, n - ol + nl)
    cdef char* dst = PyBytes_AS_STRING(out)
    memcpy(dst, src, head)
    memcpy(dst + head, new_d, nl)
    memcpy(dst + head + nl, src + head + ol, n - head - ol)
    return out


cdef inline int _hex_digits(unsigned int v, char* out) noexcept:
    """``"%x" % v`` for a hextet (0-0xFFFF) into ``out``; its length (snprintf's work at
    ~1,000 instructions a call, eight calls an address)."""
    cdef int k, n = 0
    cdef unsigned int d
    for k in range(12, -1, -4):
        d = (v >> k) & 0xF
        if d or n or k == 0:
            out[n] = <char>(48 + d if d < 10 else 87 + d)
            n += 1
    return n


def addr_text(addr):
    """Twin of ``segment.addr_text``: an IPv4 address (4 bytes) formatted in C, where the
    reference's f-string converts four integers (~1,700 instructions, twice per record),
    and an IPv6 one (RFC 5952) in C, where ``ipaddress`` took ~20 k; an IPv4-mapped IPv6
    address and anything else by the reference."""
    text = _ipv4_text(addr)
    if text is None:
        text = _ipv6_text(addr)
    return text if text is not None else _refs().addr_text(addr)


# ---------------------------------------------------------------- duplicates.original_of
ctypedef struct DupRec:
    # One segment of a sender's ring of recent segments (``Connection.recent``'s entries),
    # the fields ``original_of`` compares packed in 56 bytes, so the Segment itself need not
    # live on: eight Segments a side held ~2 KB a connection, 12 % of the peak RSS on
    # 2m.pcap; eight records fit one 448-byte block of Python's small-object allocator.
    long long ts
    PyObject* seg  # the Segment (a strong reference) when a field does not fit below
    uint32_t seq, ack, tsval, frame
    int32_t ip_id, window, plen
    uint16_t checksum, urgent, flags
    uint8_t ttl, has_tsval


# C constants: a literal beyond C's int (0xFFFFFFFF) would make Cython compare as Python
# integers, boxing each field it is compared with.
cdef extern from *:
    """
    #define TCPTRACE_U32_MAX 0xFFFFFFFFLL
    #define TCPTRACE_I32_MAX 0x7FFFFFFFLL
    #define TCPTRACE_I32_MIN (-0x7FFFFFFFLL - 1)
    """
    # C macros, not module variables: the compiler folds each ``lo <= x <= hi`` test into
    # one unsigned comparison (a variable is loaded and compared twice).
    const long long _U32_MAX "TCPTRACE_U32_MAX"
    const long long _I32_MAX "TCPTRACE_I32_MAX"
    const long long _I32_MIN "TCPTRACE_I32_MIN"


cdef int _dup_put(DupRec* rec, Segment seg, bint keep) except -1:
    """Write ``seg`` into ``rec``, releasing what ``rec`` held. Its fields are packed when
    each fits its C field (every segment a capture gives, but those with SACK blocks);
    otherwise, or when ``keep``, the record holds the Segment, and every field is read
    from it (:func:`_dup_same`)."""
    cdef PyObject* old = rec.seg
    cdef long long ts = seg.ts_c, frame = seg.frame_c
    cdef bint whole = keep or not (
        seg.ts_o is None and seg.frame_o is None and 0 <= frame <= _U32_MAX
        and type(seg.sack) is tuple and _no_sack(seg)
        and 0 <= seg.seq <= _U32_MAX and 0 <= seg.ack <= _U32_MAX
        and -1 <= seg.tsval <= _U32_MAX and _I32_MIN <= seg.payload_len <= _I32_MAX
        and 0 <= seg.checksum <= 0xFFFF and 0 <= seg.urgent <= 0xFFFF
        and 0 <= seg.flags <= 0xFFFF and 0 <= seg.ttl <= 0xFF)
    if whole:
        Py_INCREF(seg)
        rec.seg = <PyObject*>seg
    else:
        rec.seg = NULL
        rec.ts = ts
        rec.frame = <uint32_t>frame
        rec.seq = <uint32_t>seg.seq
        rec.ack = <uint32_t>seg.ack
        rec.has_tsval = seg.tsval >= 0
        rec.tsval = <uint32_t>seg.tsval if seg.tsval >= 0 else 0
        rec.plen = <int32_t>seg.payload_len
        rec.checksum = <uint16_t>seg.checksum
        rec.flags = <uint16_t>seg.flags
        rec.ip_id = seg.ip_id
        rec.window = seg.window
        rec.urgent = <uint16_t>seg.urgent
        rec.ttl = <uint8_t>seg.ttl
    Py_XDECREF(old)
    return 0


cdef inline bint _dup_same(DupRec* rec, Segment seg) noexcept:
    """Rule 1's test: ``rec`` repeats ``seg``'s sequence and acknowledgment numbers, flags,
    payload length, TSval and IP ID, and is not ``seg`` itself."""
    cdef Segment r
    if rec.seg != NULL:
        r = <Segment>rec.seg
        return (r.seq == seg.seq and r.ack == seg.ack and r.flags == seg.flags
                and r.payload_len == seg.payload_len and r.tsval == seg.tsval
                and r.ip_id == seg.ip_id and r is not seg)
    return (rec.seq == seg.seq and rec.ack == seg.ack and rec.flags == seg.flags
            and rec.plen == seg.payload_len and rec.ip_id == seg.ip_id
            and (rec.tsval if rec.has_tsval else -1) == seg.tsval)


cdef inline int _dup_ip_id(DupRec* rec) noexcept:
    return (<Segment>rec.seg).ip_id if rec.seg != NULL else rec.ip_id


cdef inline object _dup_ts(DupRec* rec):
    return (<Segment>rec.seg).ts_ns if rec.seg != NULL else rec.ts


cdef DupRec* _dup_ring(Segment seg, Py_ssize_t n) except NULL:
    """A ring of ``n`` records, each ``seg`` (the reference's ``[seg] * n``)."""
    cdef DupRec* ring = <DupRec*>PyMem_Calloc(n, sizeof(DupRec))
    if ring == NULL:
        raise MemoryError()
    cdef Py_ssize_t i
    for i in range(n):
        _dup_put(&ring[i], seg, False)
    return ring


cdef void _dup_free(DupRec* ring, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    if ring != NULL:
        for i in range(n):
            Py_XDECREF(ring[i].seg)
        PyMem_Free(ring)


cdef Segment _dup_segment(DupRec* rec, Segment like):
    """The ring's segment as a Segment: the one it holds, or one built from its fields
    (addresses and ports are ``like``'s, the segment it is compared with: a copy has the
    same ones)."""
    if rec.seg != NULL:
        return <Segment>rec.seg
    cdef Segment s = Segment.__new__(Segment)
    s.frame_c = rec.frame  # a 32-bit count and a time within +-2**62 (_dup_put)
    s.ts_c = rec.ts
    s.src = like.src
    s.dst = like.dst
    s.sport = like.sport
    s.dport = like.dport
    s.seq = rec.seq
    s.ack = rec.ack
    s.flags = rec.flags
    s.window = rec.window
    s.payload_len = rec.plen
    s.captured_payload = rec.plen
    s.urgent = rec.urgent
    s.mss = -1
    s.wscale = -1
    s.sack = _EMPTY
    s.tsval = rec.tsval if rec.has_tsval else -1
    s.tsecr = -1
    s.ip_id = rec.ip_id
    s.ttl = rec.ttl
    s.other_options = _EMPTY
    s.checksum = rec.checksum
    return s


cdef object _original_of_c(Segment seg, DupRec* recent, Py_ssize_t n,
                           object weak_max_ns, object syn_max_ns,
                           object peer_loss_signal_ns, object peer_last_ts_ns,
                           object min_rtt_ns):
    """Twin of ``duplicates.original_of`` for a ring of ``n`` records: the scan for the
    earliest identical segment on C fields, then the reference's rules 2 and 3 on the same
    Python values (times stay Python integers, the timer test Python float arithmetic).
    The reference's ``r is not seg`` is tested where the record holds its Segment; a
    connection's ring holds ``seg`` only after it was checked, the engine never replays
    a segment object twice, so a record in C is never ``seg``."""
    cdef long long plen = seg.payload_len
    cdef int flags = seg.flags, ip_id = seg.ip_id
    cdef DupRec* r
    cdef DupRec* found = NULL
    cdef Py_ssize_t i
    for i in range(n):
        r = &recent[i]
        if _dup_same(r, seg):
            if found == NULL:
                found = r
            elif r.seg == NULL and found.seg == NULL:
                if r.ts < found.ts:
                    found = r
            elif _dup_ts(r) < _dup_ts(found):
                found = r
    if found == NULL:
        return None
    if ip_id > 0:
        for i in range(n):
            if _dup_ip_id(&recent[i]) != ip_id:
                return _dup_segment(found, seg), "ip_id"
    sent_ns = _dup_ts(found)
    interval = _seg_ts(seg) - sent_ns
    limit = syn_max_ns if flags & SYN else weak_max_ns
    original = _dup_segment(found, seg)
    if not (original.window == seg.window and original.checksum == seg.checksum
            and original.urgent == seg.urgent and original.sack == seg.sack
            and 0 <= original.ttl - seg.ttl <= MAX_HOPS_BETWEEN_COPIES
            and -limit <= interval <= limit):
        return None
    if flags & SYN:
        return original, "bytes"
    if plen or flags & FIN:
        if peer_loss_signal_ns >= sent_ns or (
                min_rtt_ns >= 0
                and interval > TIMER_MIN_RTTS * min_rtt_ns + TIMER_MIN_EXTRA_NS):
            return None
        return original, "bytes"
    if peer_last_ts_ns >= sent_ns:
        return None
    return original, "bytes"


cdef object MAX_HOPS_BETWEEN_COPIES = 2  # duplicates.MAX_HOPS_BETWEEN_COPIES
cdef object TIMER_MIN_RTTS = 2.0  # duplicates.TIMER_MIN_RTTS
cdef object TIMER_MIN_EXTRA_NS = 2_000_000  # duplicates.TIMER_MIN_EXTRA_NS


cdef object _original_of_list(Segment seg, list recent, tuple args, bint keep):
    """:func:`_original_of_c` over a ring made from the list (each record holding its
    Segment when ``keep``)."""
    cdef Py_ssize_t i, n = len(recent)
    cdef DupRec* ring = <DupRec*>PyMem_Calloc(n, sizeof(DupRec))
    if ring == NULL:
        raise MemoryError()
    try:
        for i in range(n):
            _dup_put(&ring[i], <Segment?>recent[i], keep)
        return _original_of_c(seg, ring, n, args[0], args[1], args[2], args[3], args[4])
    finally:
        _dup_free(ring, n)


def original_of(seg, recent, weak_max_ns, syn_max_ns, peer_loss_signal_ns, peer_last_ts_ns,
                min_rtt_ns):
    """Twin of ``duplicates.original_of`` on a list of segments: the connection's ring
    function over a ring made from the list, each record holding its Segment, so the one
    returned is the list's own (a segment or ring of another class, built by a test, takes
    the reference)."""
    args = (weak_max_ns, syn_max_ns, peer_loss_signal_ns, peer_last_ts_ns, min_rtt_ns)
    if type(seg) is Segment and type(recent) is list and len(<list>recent) and all(
            type(r) is Segment for r in <list>recent):
        return _original_of_list(<Segment>seg, <list>recent, args, True)
    from tcptrace_py.duplicates import reference_original_of

    return reference_original_of(seg, recent, *args)


def original_of_packed(Segment seg, list recent, weak_max_ns, syn_max_ns,
                       peer_loss_signal_ns, peer_last_ts_ns, min_rtt_ns):
    """:func:`original_of` as a connection's ring runs it: each segment packed into its
    record where its fields fit, so the original found is rebuilt from the record (for the
    tests that hold the packing to the reference)."""
    return _original_of_list(seg, recent, (weak_max_ns, syn_max_ns, peer_loss_signal_ns,
                                           peer_last_ts_ns, min_rtt_ns), False)


cpdef bint quiet(object conn_obj) except -1:
    """Twin of ``detectors.base.quiet``: the same tests, in its order, on the C fields
    (another connection type, a test's stand-in for one, takes the reference)."""
    if not isinstance(conn_obj, ConnectionBase):
        from tcptrace_py.detectors.base import reference_quiet

        return reference_quiet(conn_obj)
    cdef ConnectionBase conn = <ConnectionBase>conn_obj
    cdef _Refs r = _refs()
    if conn.self_connect or conn.gave_up is not None or conn.first_rst_frame >= 0 \
            or conn.first_rst_sender:
        return False
    cdef long long* n = &conn._pv[P_PACKETS]
    if not n[0] or not n[1]:
        return False
    n = &conn._pv[P_RST_COUNT]
    if n[0] or n[1]:
        return False
    n = &conn._pv[P_PURE_SYN_SENT]
    if n[0] > 1 or n[1] or conn._pv[P_SYNACK_SENT + 1] > 1:
        return False
    if conn.invalid_flags or conn.syn_with_data or conn.data_after_fin or conn.after_rst \
            or conn.out_of_window_rsts or conn.challenges or conn.icmp_errors \
            or conn.duplicates:
        return False
    server_state = (<EndpointMachineBase?>conn.server).state
    if (<EndpointMachineBase?>conn.client).state is r.last_ack \
            or server_state is r.last_ack or server_state is r.syn_received:
        return False
    cdef SequenceAnalyzerBase a = <SequenceAnalyzerBase?>conn.analyzer
    if a.retransmissions or a.keepalives or a.zero_window_periods or a.window_full_events:
        return False
    cdef DirectionStatsBase c = <DirectionStatsBase?>a.client
    cdef DirectionStatsBase v = <DirectionStatsBase?>a.server
    return not (c.lost_segments or v.lost_segments or c.acks_unseen or v.acks_unseen
                or c.truncated_pkts or v.truncated_pkts)


cdef NoteRec* _first_fin_rec(ConnectionBase conn, long long frame) noexcept:
    """``detectors.close.first_fin``'s packet among the packed notable packets: the first
    at ``frame`` with FIN and without RST (NULL: none)."""
    cdef Py_ssize_t i
    cdef NoteRec* rec
    if frame < 0:
        return NULL
    for i in range(conn._nt_n):
        rec = &conn._nt[i]
        if rec.frame == frame and rec.flags & 0x01 and not rec.flags & 0x04:
            return rec
    return NULL


cdef long long _sent_after_c(EndpointMachineBase m, NoteRec* peer_fin,
                             long long sent_before) noexcept:
    """Twin of ``detectors.close.sent_after`` on a packed FIN."""
    if peer_fin == NULL or not peer_fin.flags & ACK_BIT or m.snd_max < 0:
        return 0
    cdef long long start = peer_fin.ack
    cdef long long d = (m.snd_max - start) & _MASK
    cdef long long later
    if d >= _HALF:
        return 0
    if sent_before >= 0:
        later = (m.snd_max - sent_before) & _MASK
        if later >= _HALF:
            return 0
        if later < d:
            d, start = later, sent_before
    if m.fin_sent and ((m.fin_seq - start) & _MASK) < d:
        d -= 1
    return d if d > 0 else 0


cpdef bint closed_quietly(object conn_obj, long long max_close_delay_ns) except -1:
    """Twin of ``detectors.close.closed_quietly``: the same tests, in its order, on the
    packed notable packets and events and the C fields (a connection whose evidence was
    made objects, or of another type, takes the reference)."""
    cdef ConnectionBase conn
    if isinstance(conn_obj, ConnectionBase):
        conn = <ConnectionBase>conn_obj
        if conn._notable is not None or conn._events is not None:
            conn = None
    else:
        conn = None
    if conn is None:
        from tcptrace_py.detectors.close import reference_closed_quietly

        return reference_closed_quietly(conn_obj, max_close_delay_ns)
    cdef _Refs r = _refs()
    cdef Py_ssize_t closing = r.closing_index, i
    cdef bint any_closing = False
    if closing >= 0:
        for i in range(conn._ev_n):
            if conn._ev[i].kind_i == 0 and conn._ev[i].new_i == closing:
                any_closing = True
                break
    cdef long long f0 = conn._pv[P_FIN_FRAME], f1 = conn._pv[P_FIN_FRAME + 1]
    if f0 < 0 and f1 < 0:
        return not any_closing
    cdef NoteRec* fins[2]
    fins[0] = _first_fin_rec(conn, f0)
    fins[1] = _first_fin_rec(conn, f1)
    cdef EndpointMachineBase m0 = <EndpointMachineBase?>conn.client
    cdef EndpointMachineBase m1 = <EndpointMachineBase?>conn.server
    cdef int side = 0 if f1 < 0 or 0 <= f0 < f1 else 1
    if fins[side] != NULL and _sent_after_c(m1 if side == 0 else m0, fins[side],
                                            conn._pv[P_PEER_SENT_AT_FIN + side]) > 0:
        return False
    if any_closing:
        return False
    cdef int s
    cdef NoteRec* peer_fin
    cdef NoteRec* own_fin
    for s in range(2):
        peer_fin = fins[1 - s]
        if peer_fin == NULL or not conn._pv[P_PACKETS + s]:
            continue
        own_fin = fins[s]
        if own_fin == NULL:
            if (m0 if s == 0 else m1).state is r.close_wait:
                return False
        elif own_fin.frame > peer_fin.frame \
                and own_fin.ts - peer_fin.ts >= max_close_delay_ns:
            return False
    return True


cdef inline bint _seq_lt_c(long long a, long long b) noexcept:
    """``connection._seq_lt``: a < b in modulo-2**32 sequence space."""
    return ((a - b) & _MASK) >= _HALF and a != b  # C constants: the literals were Python ints


# Constants of the reference modules (checked equal at import by tests/test_engines.py).
cdef long long _MASK = 0xFFFFFFFF
cdef long long _HALF = 0x80000000
cdef long long ACK_BIT = 0x10
cdef long long PSH_BIT = 0x08
cdef long long NOT_STEADY = 0x02 | 0x01 | 0x04 | 0x10
cdef long long RTT_SAMPLE = 1 << 24
cdef long long AMBIGUOUS_ACK = 1 << 23
cdef long long DUP_ACK = 1 << 8
cdef long long TRIPLE_DUP_ACK = 1 << 9
cdef long long WINDOW_UPDATE = 1 << 17
cdef long long SACK_FLAG = 1 << 19
cdef long long DSACK_FLAG = 1 << 20
cdef long long TSO_SUPERSEGMENT = 1 << 21
cdef long long WS_ACK = 4
cdef long long WS_DATA = 8
cdef long long HIST_DATA = 0x10
cdef long long HIST_ACK = 0x20
cdef long long Z_ESTABLISHED = 4
cdef long long Z_INACTIVE = 0
cdef long long Z_SYN_SENT = 1
cdef long long Z_SYN_ACK_SENT = 2
cdef long long Z_PARTIAL = 3
cdef long long Z_CLOSED = 5
cdef long long Z_RESET = 6
cdef long long Z_WS_SYN = 1
cdef long long Z_WS_SYNACK = 2
cdef long long Z_WS_FIN = 16
cdef long long Z_WS_RST = 32
cdef long long Z_HIST_SYN = 0x1
cdef long long Z_HIST_FIN = 0x2
cdef long long Z_HIST_RST = 0x4
cdef long long Z_HIST_FIN_RST = 0x8
cdef long long Z_HIST_MULTI_FLAG = 0x100
cdef long long RST_BIT = 0x04
cdef long long TOO_LARGE_SEQ_DELTA = 1048576
cdef long long SCALED_HISTORY_BASE = 10
cdef long long ECN_FLAGS = 0x40 | 0x80

CONSTANTS = {
    "MASK": _MASK, "HALF": _HALF, "ACK": ACK_BIT, "PSH": PSH_BIT, "RTT_SAMPLE": RTT_SAMPLE,
    "AMBIGUOUS_ACK": AMBIGUOUS_ACK, "TSO_SUPERSEGMENT": TSO_SUPERSEGMENT, "WS_ACK": WS_ACK,
    "ACK_AT_UNA_FLAGS": (DUP_ACK, TRIPLE_DUP_ACK, WINDOW_UPDATE, SACK_FLAG, DSACK_FLAG),
    "WS_DATA": WS_DATA,
    "HIST_DATA": HIST_DATA, "HIST_ACK": HIST_ACK, "ESTABLISHED": Z_ESTABLISHED,
    "TOO_LARGE_SEQ_DELTA": TOO_LARGE_SEQ_DELTA, "SCALED_HISTORY_BASE": SCALED_HISTORY_BASE,
    "ECN_FLAGS": ECN_FLAGS, "COMPACT_TAIL_SEGMENTS": COMPACT_TAIL,
    "EXACT_BELOW": EXACT_BELOW, "ROUND_MARGIN": ROUND_MARGIN, "NO_LATE": NO_LATE,
    "ZEEK_STATES": (Z_INACTIVE, Z_SYN_SENT, Z_SYN_ACK_SENT, Z_PARTIAL, Z_ESTABLISHED,
                    Z_CLOSED, Z_RESET),
    "WS_BITS": (Z_WS_SYN, Z_WS_SYNACK, WS_ACK, WS_DATA, Z_WS_FIN, Z_WS_RST),
    "HIST_BITS": (Z_HIST_SYN, Z_HIST_FIN, Z_HIST_RST, Z_HIST_FIN_RST, HIST_DATA, HIST_ACK,
                  Z_HIST_MULTI_FLAG),
    "DUPLICATE_RULES": (MAX_HOPS_BETWEEN_COPIES, TIMER_MIN_RTTS, TIMER_MIN_EXTRA_NS),
    "RECORD_ROOM": RECORD_ROOM,
    "ECN_FACTS": (ACE_FLAGS, ECE_BIT, CWR_BIT, IP_ECN_CE, _ACCECN_SYNACK),
}
"""The reference's values of the constants compiled in above (a test compares them)."""


cdef inline long long _sdelta(long long a, long long b) noexcept nogil:
    """Signed 32-bit distance a - b (compat's inlined ``_delta``)."""
    return ((a - b + _HALF) & _MASK) - _HALF


cdef enum:
    SACK_BLOCKS_C = 4  # what a TCP header's 40 option bytes can hold


cdef struct _SackBlocks:
    Py_ssize_t n                        # blocks
    long long edge[2 * SACK_BLOCKS_C]   # left, right of each, raw sequence numbers


cdef bint _sack_blocks_c(object sack, _SackBlocks* out) noexcept:
    """Read ``sack`` into ``out`` when it is what :func:`_on_sack_c` takes in C: a tuple of
    at most SACK_BLOCKS_C (left, right) pairs of exact 32-bit integers, as decoders give
    (a segment built otherwise goes to the reference's ``_on_ack``)."""
    if type(sack) is not tuple:
        return False
    cdef Py_ssize_t n = PyTuple_GET_SIZE(sack), i, k
    if n > SACK_BLOCKS_C:
        return False
    cdef object block
    for i in range(n):
        block = <object>PyTuple_GET_ITEM(sack, i)
        if type(block) is not tuple or PyTuple_GET_SIZE(block) != 2:
            return False
        for k in range(2):
            if not _time_c(<object>PyTuple_GET_ITEM(block, k), &out.edge[2 * i + k]) \
                    or not 0 <= out.edge[2 * i + k] <= _MASK:
                return False
    out.n = n
    return True


cdef long long _ack_at_una(SequenceAnalyzerBase an, Segment seg, SenderStateBase snd,
                           SenderStateBase rcv, DirectionStatsBase st, long long ack_rel,
                           long long nxt, long long plen, long long fl,
                           const _SackBlocks* sack) except -1:
    """``SequenceAnalyzer._on_ack`` for an ACK at SND.UNA (``ack_rel == una <= nxt``, the
    peer's base known, no keep-alive or zero-window probe waiting for its ACK): RFC 5681's
    duplicate ACK or a window update, then the SACK blocks (:func:`_on_sack_c`). Lossy
    connections send these by the thousand (the reference call cost ~16 k instructions)."""
    cdef long long mask = 0
    if (not plen and not fl & (SYN | FIN | RST_BIT) and seg.ack == snd.last_ack_raw
            and snd.last_sent_ack):
        if seg.window == snd.last_win_raw:
            if nxt > ack_rel and seg.window:
                snd.dupacks += 1
                st.dup_acks += 1
                mask |= DUP_ACK
                if snd.dupacks == an._thresh:
                    mask |= TRIPLE_DUP_ACK
                    st.triple_dup_acks += 1
        elif seg.window:
            mask |= WINDOW_UPDATE
            st.window_updates += 1
    snd.last_ack_raw = seg.ack
    snd.last_win_raw = seg.window
    snd.last_sent_ack = True
    if sack.n:
        mask |= _on_sack_c(an, rcv, st, ack_rel, sack)
    return mask


cdef long long _on_sack_c(SequenceAnalyzerBase an, SenderStateBase rcv,
                          DirectionStatsBase st, long long ack_rel,
                          const _SackBlocks* sack) except -1:
    """Twin of ``SequenceAnalyzer._on_sack`` for blocks :func:`_sack_blocks_c` read: the
    blocks relative to the peer's ISN, a D-SACK told (RFC 2883 section 4) and marked through
    the reference's ``_mark_dsack``, the highest SACKed edge kept."""
    cdef long long mask = SACK_FLAG
    st.sack_pkts += 1
    cdef Py_ssize_t n = sack.n, i
    if n > st.max_sack_blocks:
        st.max_sack_blocks = n
    cdef long long base = rcv.base
    cdef long long nxt = rcv.snd_nxt
    cdef long long left[SACK_BLOCKS_C]
    cdef long long right[SACK_BLOCKS_C]
    for i in range(n):
        left[i] = nxt + ((sack.edge[2 * i] - base - nxt + _HALF) & _MASK) - _HALF
        right[i] = nxt + ((sack.edge[2 * i + 1] - base - nxt + _HALF) & _MASK) - _HALF
    cdef bint dsack = left[0] < ack_rel or (
        n > 1 and left[1] <= left[0] and right[0] <= right[1])
    if dsack:
        mask |= DSACK_FLAG
        st.dsack_pkts += 1
        an._mark_dsack(rcv, left[0], right[0])
    for i in range(1 if dsack else 0, n):
        if right[i] > rcv.sack_high:
            rcv.sack_high = right[i]
    return mask


cdef long long _ack_new_data(SequenceAnalyzerBase an, SenderStateBase snd,
                             SenderStateBase rcv, DirectionStatsBase rst_, long long ack_rel,
                             object ts, object sent_ts) except -1:
    """The ACK of new data whose segment was sent once (``SequenceAnalyzer.on_segment``'s
    second ACK branch): SND.UNA, the RTT sample (``sent_ts``: None when the segment is not
    remembered), the prune. Returns RTT_SAMPLE or 0. In C (:func:`_ack_new_data_c`) while
    both times are within +-2**62 ns."""
    cdef long long t_c, s_c
    if sent_ts is None:
        return _ack_new_data_c(an, snd, rcv, rst_, ack_rel, 0, False, 0)
    if _time_c(ts, &t_c) and _time_c(sent_ts, &s_c):
        return _ack_new_data_c(an, snd, rcv, rst_, ack_rel, t_c, True, s_c)
    cdef long long mask = _ack_new_data_c(an, snd, rcv, rst_, ack_rel, 0, False, 0)
    sample = ts - sent_ts  # on Python integers (the sample does not read what the prune drops)
    if sample >= 0:
        mask |= RTT_SAMPLE
        (<RunningStatsBase>_as(rst_.rtt, RunningStatsBase)).add(<double>sample)
        (<RttEstimatorBase>_as(rcv.est, RttEstimatorBase)).update(sample)
    return mask


cdef long long _ack_new_data_c(SequenceAnalyzerBase an, SenderStateBase snd,
                               SenderStateBase rcv, DirectionStatsBase rst_,
                               long long ack_rel, long long ts, bint sent,
                               long long sent_ts) except -1:
    """:func:`_ack_new_data` on times within +-2**62 ns (``sent`` False: the segment is not
    remembered); the steady path calls it directly. The sample's conversion to double
    rounds as the Python integer's does."""
    cdef long long mask = 0
    rcv.snd_una = ack_rel
    snd.dupacks = 0
    if ack_rel > 1:
        rcv.iw_done = True
    cdef double sample_d
    if sent and ts - sent_ts >= 0:
        mask = RTT_SAMPLE
        sample_d = <double>(ts - sent_ts)
        (<RunningStatsBase>_as(rst_.rtt, RunningStatsBase)).add(sample_d)
        (<RttEstimatorBase>_as(rcv.est, RttEstimatorBase)).update(sample_d)
    order = rcv._order
    if order is not None and len(order) + rcv._pk_n > an._max_tracked:
        _prune_c(rcv)
    return mask


cdef inline bint _time_c(object x, long long* out) noexcept:
    """``x`` as a C integer when it is an exact int within +-2**62 (every time a classic
    pcap can hold, and their differences): then arithmetic on it in C is exact."""
    cdef int overflow = 0
    if not PyLong_CheckExact(x):
        return False
    out[0] = _exact_ll(x, &overflow)
    return overflow == 0 and -_C_TIME_LIMIT < out[0] < _C_TIME_LIMIT


cdef int _prune_c(SenderStateBase state) except -1:
    """Twin of ``SequenceAnalyzer._prune``: forget acknowledged segments, oldest first, down
    to half of those tracked. A record's index keys are its own ``start``/``end`` objects
    (``FreshSegment`` tuples) or equal integers (``SentSegment``); an index entry is removed
    only when it holds that very record, as the reference's ``is`` tests."""
    order = state._order
    if order is None:
        return 0
    cdef long long una = state.snd_una
    cdef list records = <list?>order
    cdef Py_ssize_t n_obj = len(records)
    cdef Py_ssize_t n = n_obj + state._pk_n  # the pending records come last
    cdef Py_ssize_t keep = n // 2
    cdef Py_ssize_t i = 0  # records[:i] are forgotten, removed at once at the end
    cdef long long* r
    if state._tail_n >= 0:
        state._unpack()
    cdef dict by_start = <dict?>state._by_start_d
    cdef dict by_end = <dict?>state._by_end_d
    while n - i > keep:
        if i >= n_obj:
            # Pending: the reference put it in both indexes, as the last entry under its
            # keys, and now takes it out: whatever they held under those keys goes.
            r = &state._pk[4 * (i - n_obj)]
            if r[1] > una:
                break
            by_start.pop(r[0], None)
            by_end.pop(r[1], None)
            i += 1
            continue
        if _record_end(records[i]) > una:
            break
        old = records[i]
        i += 1
        if type(old) is tuple:
            if len(<tuple>old) < 2:
                raise ValueError("a FreshSegment record has 4 fields")
            start = (<tuple>old)[0]
            end = (<tuple>old)[1]
        else:
            start = (<SentSegment?>old).start
            end = (<SentSegment?>old).end
        if by_start.get(start) is old:
            del by_start[start]
        if by_end.get(end) is old and not (
                state._pend_fin is not None and end == (<SentSegment?>state._pend_fin).end):
            del by_end[end]  # (a pending FIN record was put under that key after it)
    if i > n_obj:
        del records[:]
        state._drop_pending(i - n_obj)
    else:
        del records[:i]
    return 0


cdef object _estimator(_Refs c, _AnalysisValues o):
    """Twin of ``SequenceAnalyzer._estimator``: a sender's RFC 6298 estimator, configured
    by the analysis options' values ``o``."""
    return _new_rtt_estimator(c.rtt_estimator, o.rto_initial_ns, o.rto_min_ns, o.rto_max_ns,
                              o.clock_granularity_ns)


cdef int _first_syn_sent(SenderStateBase snd, Segment seg, long long fl,
                         object ts) except -1:
    """``SequenceAnalyzer._on_data`` for a sender's first SYN (or SYN-ACK) without payload:
    the SYN's sequence number becomes a remembered segment (its ACK gives the handshake
    RTT)."""
    cdef long long nxt = snd.snd_nxt
    cdef long long rel = nxt + ((seg.seq - snd.base - nxt + _HALF) & _MASK) - _HALF
    srec = _fresh_sent_segment(rel, rel + 1, _seg_frame(seg), ts, "syn")
    _set_record(snd, 1, srec)
    if fl & ACK_BIT:
        snd.synack_sent = True
    _ends_of(snd)[rel + 1] = srec
    if rel + 1 > snd.snd_nxt:
        snd.snd_nxt = rel + 1
    return 0


cdef int _first_fin_sent(SenderStateBase snd, Segment seg, long long end,
                         object ts) except -1:
    """``SequenceAnalyzer._on_data`` for a sender's first FIN, without payload, at SND.NXT
    (``end``): the FIN's sequence number becomes a remembered segment."""
    frec = _fresh_sent_segment(end, end + 1, _seg_frame(seg), ts, "fin")
    _set_record(snd, 2, frec)
    snd.fin_rel = end
    if snd._pk_n and snd._pend_fin is None and end >= snd._pend_end:
        snd._pend_fin = frec  # after the pending records (SenderStateBase._flush)
    else:
        _ends_of(snd)[end + 1] = frec
    if end + 1 > snd.snd_nxt:
        snd.snd_nxt = end + 1
    return 0


cdef long long _ack_sent_segment(SequenceAnalyzerBase an, SenderStateBase snd,
                                 SenderStateBase rcv, DirectionStatsBase rst_,
                                 long long ack_rel, object ts, SentSegment rec) except -1:
    """The ACK of new data ending at a remembered ``SentSegment`` (a SYN, a FIN, or any
    segment once the sender has retransmitted): ``SequenceAnalyzer._on_ack``'s branch for
    such a record when no late transmission lies below the ACK (``ack_rel <=
    rcv.late_low``), so Karn's rule turns on the record's own count of transmissions. The
    handshake RTT is taken from the SYN's last transmission, as the reference does."""
    cdef long long mask
    if rec.tx > 1:
        mask = AMBIGUOUS_ACK
        rst_.ambiguous_acks += 1
        _ack_new_data(an, snd, rcv, rst_, ack_rel, ts, None)
    else:
        mask = _ack_new_data(an, snd, rcv, rst_, ack_rel, ts, rec.ts_ns)
    if rec.control == "syn" and rst_.handshake_rtt_ns < 0:
        rst_.handshake_rtt_ns = ts - rec.last_ts_ns
    return mask


cdef int _count_truncated(DirectionStatsBase st, Segment seg, long long plen) except -1:
    """Twin of ``DirectionStats.count_truncated`` for a segment the snaplen cut."""
    st.truncated_pkts += 1
    st.truncated_bytes += plen - seg.captured_payload
    if st.truncated_first_frame < 0:
        st.truncated_first_frame = _seg_frame(seg)
        st.truncated_first_ts_ns = _seg_ts(seg)
    st.truncated_last_frame = _seg_frame(seg)
    return 0


cdef inline void _window_stats(DirectionStatsBase st, long long win) noexcept:
    """The window advertisement's counters (``SequenceAnalyzer.on_segment``)."""
    if st.win_min < 0 or win < st.win_min:
        st.win_min = win
    if win > st.win_max:
        st.win_max = win
    st.win_sum += win
    st.win_n += 1


cdef long long _in_order_data(SequenceAnalyzerBase an, SenderStateBase snd,
                              DirectionStatsBase st, DirectionStatsBase rst_, long long nxt,
                              long long plen, long long flags, Segment seg) except -1:
    """In-order data at SND.NXT (``SequenceAnalyzer.on_segment``'s in-order branch, which
    the steady path shares), ``seg``'s: the counters, the range, the remembered segment.
    Returns TSO_SUPERSEGMENT or 0; the caller moves SND.NXT."""
    cdef long long mask = 0
    cdef long long end = nxt + plen
    st.data_pkts += 1
    st.data_bytes += plen
    if st.seg_max == 0 or plen < st.seg_min:
        st.seg_min = plen
    if plen > st.seg_max:
        st.seg_max = plen
    if flags & PSH_BIT:
        st.pushed_pkts += 1
    cdef long long peer_mss = rst_.mss
    if peer_mss > 0 and plen > peer_mss:
        mask = TSO_SUPERSEGMENT
        st.tso_pkts += 1
    cdef RangeSetBase ranges = <RangeSetBase?>snd.ranges
    cdef long long frame_c, ts_c
    if snd._tail_n >= 0:
        snd._unpack()
    order = snd._order
    if order is None:
        order = snd._order = []
    if (end > nxt and snd._pend_fin is None
            and (not snd._pk_n or nxt >= snd._pend_end)
            and _pair_ll(seg.frame_c, seg.frame_o, &frame_c)
            and _pair_ll(seg.ts_c, seg.ts_o, &ts_c)):
        # Pending (SenderStateBase._flush): four C integers, no object.
        ranges._add_end(nxt, end, None if ranges._s_list is None else <object>end)
        snd._push_pending(nxt, end, frame_c, ts_c)
    else:
        # One int object each for the record, both index keys and the range's end
        # (declared as objects: an inferred C integer would box itself at each use).
        start_obj = <object>nxt
        end_obj = <object>end
        ranges._add_end(nxt, end, end_obj)
        frame = _seg_frame(seg)
        ts = _seg_ts(seg)
        if snd.mutable:
            new = _fresh_sent_segment(nxt, end, frame, ts)
        else:
            new = (start_obj, end_obj, frame, ts)
        _starts_of(snd)[start_obj] = new  # the pending ones first
        _ends_of(snd)[end_obj] = new
        (<list?>order).append(new)
    cdef Py_ssize_t tracked = len(<list?>order) + snd._pk_n
    if (tracked > an._max_unacked_c if an._max_unacked_c >= 0
            else tracked > an._max_unacked):
        an._forget_oldest(snd)
    if not snd.iw_done:
        st.iw_bytes += plen
        st.iw_pkts += 1
    return mask


cpdef long long steady_segment(object conn_obj, Segment seg) except? -2:
    """Twin of ``fastpath.steady_segment``: apply a steady segment, or return -1 having
    changed nothing (the caller takes the full path). Every block names its reference."""
    cdef int flags = seg.flags
    cdef long long plen = seg.payload_len
    cdef long long window = seg.window
    if flags & NOT_STEADY != ACK_BIT or window <= 0 or not _no_sack(seg) \
            or seg.header_truncated:
        return -1
    cdef ConnectionBase conn = <ConnectionBase>_as(conn_obj, ConnectionBase)
    cdef bint from_client = seg.sport == conn.client_port and seg.src == conn.client_addr
    cdef SequenceAnalyzerBase an = <SequenceAnalyzerBase>_as(conn.analyzer,
                                                             SequenceAnalyzerBase)
    cdef Py_ssize_t side
    cdef SenderStateBase snd, rcv
    cdef DirectionStatsBase st, rst_
    if from_client:
        side = 0
        snd = <SenderStateBase>_as(an._c, SenderStateBase)
        rcv = <SenderStateBase>_as(an._s, SenderStateBase)
        st = <DirectionStatsBase>_as(an.client, DirectionStatsBase)
        rst_ = <DirectionStatsBase>_as(an.server, DirectionStatsBase)
    else:
        side = 1
        snd = <SenderStateBase>_as(an._s, SenderStateBase)
        rcv = <SenderStateBase>_as(an._c, SenderStateBase)
        st = <DirectionStatsBase>_as(an.server, DirectionStatsBase)
        rst_ = <DirectionStatsBase>_as(an.client, DirectionStatsBase)
    cdef PeerSummaryBase peer = <PeerSummaryBase>_as(conn.peer, PeerSummaryBase)
    cdef tuple eps = peer._eps
    cdef EndpointBase e = <EndpointBase>_as(eps[side], EndpointBase)
    cdef long long base = snd.base
    cdef long long last = snd.last_ts_c
    if base < 0 or last < 0 or snd.pending_ack or snd.zw_open_index != -1:
        return -1
    if conn._ring[side] == NULL:  # made at the side's first segment, which took the full path
        return -1
    if seg.ts_o is not None or seg.frame_o is not None or snd.last_ts_o is not None:
        return -1  # a time or frame number beyond +-2**62: the full path's Python integers
    cdef long long ts = seg.ts_c

    # -- SequenceAnalyzer.on_segment's two common ACK branches: the tests, no writes yet.
    cdef long long ack = seg.ack
    cdef long long rbase = rcv.base
    cdef long long nxt = rcv.snd_nxt
    cdef long long una = rcv.snd_una
    if rbase < 0 or una > nxt:
        return -1
    cdef long long ack_rel = nxt + ((ack - rbase - nxt + _HALF) & _MASK) - _HALF
    cdef long long sent_ts = 0
    cdef bint acked_sent = False  # the acknowledged segment is remembered, sent at sent_ts
    cdef bint new_ack
    cdef SentSegment srec
    if ack_rel == una:
        if not plen:
            return -1
        new_ack = False
    elif una < ack_rel <= nxt:
        if ack_rel > rcv.late_low:
            return -1  # covers a re-send or hole fill: Karn's rule on cumulative ACKs
        rec = _end_lookup(rcv, ack_rel, &sent_ts)
        if rec is _PENDING:
            acked_sent = True
        elif rec is not None:
            if type(rec) is tuple:
                acked_sent = _time_c((<tuple>rec)[3], &sent_ts)
            else:
                srec = <SentSegment>_as(rec, SentSegment)
                if srec.tx > 1 or srec.control == "syn":
                    return -1
                acked_sent = _time_c(srec.ts_ns, &sent_ts)
            if not acked_sent:
                return -1  # a time beyond +-2**62: the full path's Python integers
        new_ack = True
    else:
        return -1

    # -- the sequence side.
    cdef long long s_nxt = snd.snd_nxt
    cdef long long rel = s_nxt + ((seg.seq - base - s_nxt + _HALF) & _MASK) - _HALF
    if rel != s_nxt:
        return -1
    cdef long long end = s_nxt + plen
    cdef long long rwin = rcv.win_scaled
    if plen:
        if plen == 1 or (rwin and rcv.win_known and end == snd.snd_una + rwin):
            return -1
    elif rel == snd.snd_una - 1 and rcv.win_known and rwin == 0:
        return -1

    # ===================================================================== writes
    conn.last_frame_c = seg.frame_c
    if conn.last_frame_o is not None:
        conn.last_frame_o = None
    conn.last_ts_c = ts
    if conn.last_ts_o is not None:
        conn.last_ts_o = None
    cdef long long* packets = &conn._pv[P_PACKETS]
    cdef long long sent = packets[side] + 1
    packets[side] = sent
    _dup_put(&conn._ring[side][sent % conn._dup_n], seg, False)
    conn._pv[P_PAYLOAD_BYTES + side] += plen
    conn._pv[P_WIN_RAW + side] = window
    if seg.ecn or flags & ECN_FLAGS:
        # ECN marks and echoes ride on steady segments too (facts.ProtocolFacts.on_marked,
        # a reference slot of the Connection twin: rare, so a Python call is fine).
        conn_obj.facts.on_marked(seg, side)

    cdef long long mask = 0
    st.packets += 1
    an.last_ts_c = ts
    if an.last_ts_o is not None:
        an.last_ts_o = None
    if st.idle_max_o is None:
        if ts - last > st.idle_max_c:  # the idle gap in C: both times are within +-2**62 ns
            st.idle_max_c = ts - last
    elif ts - last > st.idle_max_o:
        st.idle_max_o = _split_int(ts - last, &st.idle_max_c)
    snd.last_ts_c = ts  # snd.last_ts_o is None (tested above)
    st.last_ts_c = ts
    if st.last_ts_o is not None:
        st.last_ts_o = None

    st.ack_pkts += 1
    if new_ack:
        mask = _ack_new_data_c(an, snd, rcv, rst_, ack_rel, ts, acked_sent, sent_ts)
    snd.last_ack_raw = ack
    snd.last_win_raw = window
    snd.last_sent_ack = True

    cdef long long win = window << snd.shift
    _window_stats(st, win)
    snd.win_scaled = win
    snd.win_known = True

    if plen:
        mask |= _in_order_data(an, snd, st, rst_, s_nxt, plen, flags, seg)
        snd.snd_nxt = end
    else:
        st.pure_acks += 1
    if seg.captured_payload < plen:
        # SequenceAnalyzer.on_segment's count of payloads a snaplen cut
        mask |= _refs().truncated
        _count_truncated(st, seg, plen)

    # Connection.on_segment after the analyzer; then Zeek (PeerSummary._steady) and
    # Wireshark; then the sender's SND.MAX.
    conn._pv[P_SILENT_PROBES + (1 - side)] = 0
    cdef long long ws = peer._ws
    peer._ws_prev = ws
    peer._ws = ws | (WS_DATA if plen else WS_ACK)
    peer._n += 1
    if plen:
        if not e.hist & HIST_DATA:
            peer._check_c(e, side, HIST_DATA, "D")
    elif not e.hist & HIST_ACK:
        peer._check_c(e, side, HIST_ACK, "A")
    _peer_steady(peer, seg, e, <EndpointBase>_as(eps[1 - side], EndpointBase), side, flags,
                 plen)
    rows = conn.packet_rows
    if rows is not None:
        rows.append((_seg_frame(seg), ts, conn.flow_id, from_client, flags, mask, plen))
    cdef EndpointMachineBase machine = <EndpointMachineBase>_as(
        conn.client if from_client else conn.server, EndpointMachineBase)
    cdef long long raw_end = (seg.seq + plen) & _MASK
    cdef long long snd_max = machine.snd_max
    if snd_max < 0 or (((snd_max - raw_end) & _MASK) >= _HALF and snd_max != raw_end):
        machine.snd_max = raw_end
    return mask


cdef int _peer_steady(PeerSummaryBase peer, Segment seg, EndpointBase e, EndpointBase p,
                      Py_ssize_t side, int flags, long long plen) except -1:
    """Twin of ``compat.PeerSummary._steady``."""
    cdef long long seq = seg.seq
    cdef long long end = (seq + plen) & _MASK
    cdef long long rel_seq = _sdelta(seq, e.start_seq)
    if seg.window == 0:
        e.win0_cnt += 1
        if e.win0_cnt == e.win0_thresh:
            peer._letters.append(_history_entry("W", side))
            e.win0_thresh *= SCALED_HISTORY_BASE
    cdef long long rel_ack = 0, ack, d_ack, upper
    if flags & ACK_BIT:
        ack = seg.ack
        rel_ack = _sdelta(ack, p.start_seq)
        if rel_ack < 0:
            rel_ack = 0
        else:
            d_ack = _sdelta(ack, p.ack_seq)
            if not (ack == 0 and d_ack > TOO_LARGE_SEQ_DELTA) and d_ack > 0:
                p.ack_seq = ack
    if _sdelta(end, e.last_seq) > 0:
        e.last_seq = end
    elif plen > 0:
        e.rxmt_cnt += 1
        if e.rxmt_cnt == e.rxmt_thresh:
            peer._letters.append(_history_entry("T", side))
            e.rxmt_thresh *= SCALED_HISTORY_BASE
    if flags & ACK_BIT and rel_ack > p.trim_seq:
        if not p.fin_cnt and rel_ack <= p.reassem_seq:
            p.trim_seq = rel_ack
        else:
            peer._ack_received_c(p, 1 - side, rel_ack)
    if plen > 0 and seg.captured_payload >= plen and rel_seq >= 0:
        upper = rel_seq + plen
        blocks = e.blocks
        if ((PyList_GET_SIZE(blocks) == 0 if type(blocks) is list else not blocks)
                and _sdelta(e.ack_seq, e.start_seq) <= rel_seq
                and rel_seq <= e.reassem_seq and e.reassem_seq < upper):
            e.reassem_seq = upper
        else:
            peer._data_sent(e, rel_seq, plen)
    return 0


# ================================================================ the flow table
cdef long long SYN_ACK_RST = 0x02 | 0x10 | 0x04
cdef long long WELL_KNOWN_PORT_LIMIT = 1024  # flowtable.WELL_KNOWN_PORT_LIMIT
CONSTANTS["WELL_KNOWN_PORT_LIMIT"] = WELL_KNOWN_PORT_LIMIT
cdef long long DEADLINE_SLACK = 1024  # flowtable.DEADLINE_SLACK
CONSTANTS["DEADLINE_SLACK"] = DEADLINE_SLACK


cdef unsigned long long SHARD_MIX = 0x9E3779B1ULL
cdef unsigned long long SHARD_SLOTS = 4096
CONSTANTS["SHARD_MIX"] = SHARD_MIX
CONSTANTS["SHARD_SLOTS"] = SHARD_SLOTS


cdef inline long long slot_of(Segment seg) except -1:
    """``flowtable.slot_of`` on a segment: integer operations on the ports and the last
    byte of each address."""
    cdef bytes src = <bytes?>seg.src
    cdef bytes dst = <bytes?>seg.dst
    cdef unsigned long long x = <unsigned long long>(
        seg.sport ^ seg.dport ^ (((<const uint8_t*>PyBytes_AS_STRING(src))[
            PyBytes_GET_SIZE(src) - 1] ^ (<const uint8_t*>PyBytes_AS_STRING(dst))[
            PyBytes_GET_SIZE(dst) - 1]) << 16))
    return <long long>(((x * SHARD_MIX) >> 20) & (SHARD_SLOTS - 1))


# ------------------------------------------------ flowtable.FlowTable._by_dir
cdef struct FlowSlot:
    uint64_t hash        # 0: never used; 1: deleted; else the entry's hash (bit 1 set)
    PyObject* key        # a reference held: the key tuple the entry was stored under
    PyObject* value      # a reference held
    uint8_t addrs[32]    # source address at 0, destination at 16, zero-padded
    uint16_t sport
    uint16_t dport
    uint8_t alen         # 4 or 16


cdef struct FlowKey:
    uint8_t addrs[32]
    uint16_t sport
    uint16_t dport
    uint8_t alen
    uint64_t hash


cdef uint64_t _FLOW_SEED = 0x9E3779B97F4A7C15


cdef inline uint64_t _mix(uint64_t h, uint64_t w) noexcept nogil:
    h ^= w
    h *= 0xBF58476D1CE4E5B9ULL
    h ^= h >> 31
    return h


cdef inline void _flow_hash(FlowKey* k) noexcept nogil:
    cdef uint64_t w[4]
    memcpy(w, k.addrs, 32)
    cdef uint64_t h = _FLOW_SEED ^ k.alen
    h = _mix(h, w[0])
    h = _mix(h, w[1])
    h = _mix(h, w[2])
    h = _mix(h, w[3])
    h = _mix(h, (<uint64_t>k.sport << 16) | k.dport)
    k.hash = h | 2  # never 0 (empty) nor 1 (deleted)


cdef inline bint _flow_key(object src, long long sport, object dst, long long dport,
                           FlowKey* k) noexcept:
    """Fill ``k`` from a directional 4-tuple; False when it is not the decoder's shape
    (two bytes addresses of the same length, 4 or 16, and two ports 0-65535)."""
    if type(src) is not bytes or type(dst) is not bytes:
        return False
    cdef Py_ssize_t n = PyBytes_GET_SIZE(src)
    if (n != 4 and n != 16) or PyBytes_GET_SIZE(dst) != n \
            or sport < 0 or sport > 65535 or dport < 0 or dport > 65535:
        return False
    if n == 4:  # fixed-size copies (a call to memset and two to memcpy cost as much)
        memset(k.addrs, 0, 32)
        memcpy(k.addrs, PyBytes_AS_STRING(src), 4)
        memcpy(k.addrs + 16, PyBytes_AS_STRING(dst), 4)
    else:
        memcpy(k.addrs, PyBytes_AS_STRING(src), 16)
        memcpy(k.addrs + 16, PyBytes_AS_STRING(dst), 16)
    k.alen = <uint8_t>n
    k.sport = <uint16_t>sport
    k.dport = <uint16_t>dport
    _flow_hash(k)
    return True


cdef inline bint _tuple_flow_key(object key, FlowKey* k) noexcept:
    """:func:`_flow_key` of a key tuple (src, sport, dst, dport); False for any other."""
    if type(key) is not tuple or len(<tuple>key) != 4:
        return False
    sport = (<tuple>key)[1]
    dport = (<tuple>key)[3]
    if not (PyLong_CheckExact(sport) and PyLong_CheckExact(dport)):
        return False
    cdef int o1 = 0, o2 = 0
    cdef long long sp = PyLong_AsLongLongAndOverflow(sport, &o1)
    cdef long long dp = PyLong_AsLongLongAndOverflow(dport, &o2)
    if o1 or o2:
        return False
    return _flow_key((<tuple>key)[0], sp, (<tuple>key)[2], dp, k)


cdef object _NO_DEFAULT = object()


@cython.final
cdef class FlowIndex:
    """Twin of ``FlowTable._by_dir``, the dict from each directional 4-tuple ``(src, sport,
    dst, dport)`` to its connection, as an open-addressing hash table of C keys.

    Why: every segment looks its connection up. With the dict that costs a key tuple, two
    port integers, the tuple's hash and an item-by-item tuple compare (~800 instructions);
    here the segment's own fields are hashed and compared as bytes (~100). The reference's
    code keeps using it as the dict it stands for (``get``, ``[]``, ``del``, ``pop``,
    ``clear``, ``len``, ``in``, ``==``, iteration); a key of any other shape than the
    decoder's (never seen in practice) lives in a plain dict beside the table. Memory:
    64 bytes a slot; rebuilt for three slots per entry when two thirds of the slots hold
    entries or deleted ones, or when fewer than an eighth hold entries."""

    cdef FlowSlot* slots
    cdef Py_ssize_t mask      # capacity - 1 (a power of two)
    cdef Py_ssize_t used      # entries
    cdef Py_ssize_t filled    # entries and deleted slots
    cdef dict other           # entries whose key is not a decoder 4-tuple

    def __cinit__(self):
        self.slots = <FlowSlot*>PyMem_Calloc(8, sizeof(FlowSlot))
        if self.slots is NULL:
            raise MemoryError()
        self.mask = 7
        self.used = 0
        self.filled = 0
        self.other = {}

    def __dealloc__(self):
        if self.slots is not NULL:
            self._release_all()
            PyMem_Free(self.slots)
            self.slots = NULL

    cdef void _release_all(self) noexcept:
        """Empty every slot; the references are dropped after the slot is cleared (a
        value freed here can then never see a half-cleared table)."""
        cdef Py_ssize_t i
        cdef FlowSlot* s
        cdef PyObject* key
        cdef PyObject* value
        for i in range(self.mask + 1):
            s = &self.slots[i]
            key, value = s.key, s.value
            s.hash = 0
            s.key = NULL
            s.value = NULL
            Py_XDECREF(key)
            Py_XDECREF(value)

    cdef inline FlowSlot* _find(self, FlowKey* k) noexcept:
        """The slot holding ``k``, or NULL."""
        cdef Py_ssize_t i = <Py_ssize_t>(k.hash & <uint64_t>self.mask)
        cdef FlowSlot* s
        while True:
            s = &self.slots[i]
            if s.hash == 0:
                return NULL
            if s.hash == k.hash and s.sport == k.sport and s.dport == k.dport \
                    and s.alen == k.alen and memcmp(s.addrs, k.addrs, 32) == 0:
                return s
            i = (i + 1) & self.mask

    cdef object get_segment(self, Segment seg):
        """``get((seg.src, seg.sport, seg.dst, seg.dport))`` without the tuple."""
        cdef FlowKey k
        if not _flow_key(seg.src, seg.sport, seg.dst, seg.dport, &k):
            return self.other.get((seg.src, seg.sport, seg.dst, seg.dport))
        cdef FlowSlot* s = self._find(&k)
        return <object>s.value if s is not NULL else None

    cdef int _grow(self, Py_ssize_t capacity) except -1:
        """Rebuild at ``capacity`` slots (a power of two above twice the entries)."""
        cdef FlowSlot* old = self.slots
        cdef Py_ssize_t old_n = self.mask + 1
        cdef FlowSlot* new = <FlowSlot*>PyMem_Calloc(capacity, sizeof(FlowSlot))
        if new is NULL:
            raise MemoryError()
        cdef Py_ssize_t i, j
        cdef Py_ssize_t mask = capacity - 1
        for i in range(old_n):
            if old[i].hash > 1:
                j = <Py_ssize_t>(old[i].hash & <uint64_t>mask)
                while new[j].hash != 0:
                    j = (j + 1) & mask
                new[j] = old[i]  # the references move with the slot
        self.slots = new
        self.mask = mask
        self.filled = self.used
        PyMem_Free(old)
        return 0

    cdef int _set(self, FlowKey* k, object key, object value) except -1:
        cdef FlowSlot* s = self._find(k)
        cdef PyObject* old
        if s is not NULL:
            Py_INCREF(value)
            old = s.value
            s.value = <PyObject*>value
            Py_XDECREF(old)
            return 0
        if (self.filled + 1) * 3 > (self.mask + 1) * 2:  # two thirds full, as a dict
            self._grow(_pow2_at_least((self.used + 1) * 3))
        cdef Py_ssize_t i = <Py_ssize_t>(k.hash & <uint64_t>self.mask)
        while self.slots[i].hash > 1:
            i = (i + 1) & self.mask
        s = &self.slots[i]
        if s.hash == 0:
            self.filled += 1
        s.hash = k.hash
        memcpy(s.addrs, k.addrs, 32)
        s.sport = k.sport
        s.dport = k.dport
        s.alen = k.alen
        Py_INCREF(key)
        Py_INCREF(value)
        s.key = <PyObject*>key
        s.value = <PyObject*>value
        self.used += 1
        return 0

    cdef object _pop(self, FlowKey* k):
        """The value under ``k``, removed; NULL-free: None when absent."""
        cdef FlowSlot* s = self._find(k)
        if s is NULL:
            return None
        value = <object>s.value  # its own reference
        cdef PyObject* key = s.key
        cdef PyObject* held = s.value
        s.key = NULL
        s.value = NULL
        s.hash = 1
        self.used -= 1
        Py_XDECREF(key)
        Py_XDECREF(held)
        if self.used * 8 < self.mask + 1 and self.mask + 1 > 64:
            self._grow(_pow2_at_least(self.used * 3))
        return value

    # -- the dict interface the reference's code uses
    def get(self, key, default=None):
        cdef FlowKey k
        cdef FlowSlot* s
        if _tuple_flow_key(key, &k):
            s = self._find(&k)
            return <object>s.value if s is not NULL else default
        return self.other.get(key, default)

    def __getitem__(self, key):
        cdef FlowKey k
        cdef FlowSlot* s
        if _tuple_flow_key(key, &k):
            s = self._find(&k)
            if s is NULL:
                raise KeyError(key)
            return <object>s.value
        return self.other[key]

    def __setitem__(self, key, value):
        self._set_item(key, value)

    cdef int _set_item(self, object key, object value) except -1:
        cdef FlowKey k
        if _tuple_flow_key(key, &k):
            self._set(&k, key, value)
        else:
            self.other[key] = value
        return 0

    def __delitem__(self, key):
        cdef FlowKey k
        if _tuple_flow_key(key, &k):
            if self._find(&k) is NULL:
                raise KeyError(key)
            self._pop(&k)
        else:
            del self.other[key]

    def pop(self, key, default=_NO_DEFAULT):
        cdef FlowKey k
        if _tuple_flow_key(key, &k):
            if self._find(&k) is not NULL:
                return self._pop(&k)
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        if default is _NO_DEFAULT:
            return self.other.pop(key)
        return self.other.pop(key, default)

    def clear(self):
        self._release_all()
        self.used = 0
        self.filled = 0
        if self.mask + 1 > 64:
            self._grow(8)
        self.other.clear()

    def __len__(self):
        return self.used + len(self.other)

    def __contains__(self, key):
        cdef FlowKey k
        if _tuple_flow_key(key, &k):
            return self._find(&k) is not NULL
        return key in self.other

    def items(self):
        """The entries as (key, value) pairs, in slot order (a list: a snapshot)."""
        cdef Py_ssize_t i
        out = []
        for i in range(self.mask + 1):
            if self.slots[i].hash > 1:
                out.append((<object>self.slots[i].key, <object>self.slots[i].value))
        out.extend(self.other.items())
        return out

    def keys(self):
        return [k for k, _ in self.items()]

    def values(self):
        return [v for _, v in self.items()]

    def __iter__(self):
        return iter(self.keys())

    def __eq__(self, other):
        if isinstance(other, (dict, FlowIndex)):
            return dict(self.items()) == dict(other.items())
        return NotImplemented

    def __repr__(self):
        return f"FlowIndex({dict(self.items())!r})"


cdef Py_ssize_t _pow2_at_least(Py_ssize_t n) noexcept:
    cdef Py_ssize_t p = 8
    while p < n:
        p *= 2
    return p


@cython.final
@cython.no_gc_clear
cdef class LiveTable:
    """Twin of ``FlowTable.live``, the ``OrderedDict`` of live connections by normalised
    key, least recently active first, with the links of that order kept in the
    connections themselves (``ConnectionBase._lru_prev`` and ``_lru_next``).

    Why: every segment moves its connection to the end of the order. ``move_to_end`` on
    the ``OrderedDict`` hashes the key tuple twice and looks the method up (~860
    instructions, 7 % of a run); :meth:`touch` relinks two pointers. The reference's code
    keeps using it as the ``OrderedDict`` it stands for (``[]``, ``get``, ``pop``, ``del``,
    ``in``, ``len``, ``clear``, ``move_to_end`` and iteration over keys, values and items
    in order, which raises ``RuntimeError`` when the table changes under it, as an
    ``OrderedDict``'s does). Values are compiled connections, each in at most one table.

    The dict holds the references; the links are borrowed pointers, valid while their
    connection is in the dict (every removal unlinks first). ``no_gc_clear``: the
    collector never empties the dict before :meth:`__dealloc__` unlinks the connections
    (which may outlive the table)."""

    cdef dict index
    cdef PyObject* head
    cdef PyObject* tail
    cdef readonly Py_ssize_t version
    """Changes of membership or order so far (iterators compare it)."""

    def __cinit__(self):
        self.index = {}
        self.head = NULL
        self.tail = NULL
        self.version = 0

    def __dealloc__(self):
        self._unlink_all()

    cdef void _unlink_all(self) noexcept:
        cdef PyObject* node = self.head
        cdef ConnectionBase c
        while node is not NULL:
            c = <ConnectionBase>node
            node = c._lru_next
            c._lru_prev = NULL
            c._lru_next = NULL
            c._lru_owner = NULL
        self.head = NULL
        self.tail = NULL

    cdef inline void _link_tail(self, ConnectionBase c) noexcept:
        c._lru_owner = <void*>self
        c._lru_next = NULL
        c._lru_prev = self.tail
        if self.tail is NULL:
            self.head = <PyObject*>c
        else:
            (<ConnectionBase>self.tail)._lru_next = <PyObject*>c
        self.tail = <PyObject*>c

    cdef inline void _unlink(self, ConnectionBase c) noexcept:
        if c._lru_prev is NULL:
            self.head = c._lru_next
        else:
            (<ConnectionBase>c._lru_prev)._lru_next = c._lru_next
        if c._lru_next is NULL:
            self.tail = c._lru_prev
        else:
            (<ConnectionBase>c._lru_next)._lru_prev = c._lru_prev
        c._lru_prev = NULL
        c._lru_next = NULL
        c._lru_owner = NULL

    cdef inline void touch(self, ConnectionBase c) noexcept:
        """``move_to_end`` for a connection of this table (the caller checks it is)."""
        if <PyObject*>c is not self.tail:
            self._unlink(c)
            self._link_tail(c)
            self.version += 1

    cdef inline bint holds(self, ConnectionBase c) noexcept:
        return c._lru_owner == <void*>self

    def __setitem__(self, key, value):
        self._set_c(key, value)

    cdef int _set_c(self, object key, object value) except -1:
        cdef ConnectionBase c = <ConnectionBase?>value
        cdef ConnectionBase old
        held = self.index.get(key)
        if held is c:
            return 0
        if c._lru_owner is not NULL:
            raise ValueError("the connection is already in a live table")
        if held is None:
            self.index[key] = c
            self._link_tail(c)
        else:  # a new value keeps the key's place, as in an OrderedDict
            old = <ConnectionBase>held
            c._lru_owner = <void*>self
            c._lru_prev = old._lru_prev
            c._lru_next = old._lru_next
            if old._lru_prev is NULL:
                self.head = <PyObject*>c
            else:
                (<ConnectionBase>old._lru_prev)._lru_next = <PyObject*>c
            if old._lru_next is NULL:
                self.tail = <PyObject*>c
            else:
                (<ConnectionBase>old._lru_next)._lru_prev = <PyObject*>c
            old._lru_prev = NULL
            old._lru_next = NULL
            old._lru_owner = NULL
            self.index[key] = c  # drops the table's reference to ``old`` last
        self.version += 1
        return 0

    def __getitem__(self, key):
        return self.index[key]

    def get(self, key, default=None):
        return self.index.get(key, default)

    def pop(self, key, default=_NO_DEFAULT):
        held = self.index.get(key, _NO_DEFAULT)
        if held is _NO_DEFAULT:
            if default is _NO_DEFAULT:
                raise KeyError(key)
            return default
        self._unlink(<ConnectionBase>held)
        del self.index[key]
        self.version += 1
        return held

    def __delitem__(self, key):
        self.pop(key)

    def move_to_end(self, key, bint last=True):
        cdef ConnectionBase c = <ConnectionBase>self.index[key]
        if last:
            self.touch(c)
        elif <PyObject*>c is not self.head:
            self._unlink(c)
            c._lru_owner = <void*>self
            c._lru_next = self.head
            (<ConnectionBase>self.head)._lru_prev = <PyObject*>c
            self.head = <PyObject*>c
            self.version += 1

    def clear(self):
        self._unlink_all()
        self.index.clear()
        self.version += 1

    def __len__(self):
        return len(self.index)

    def __contains__(self, key):
        return key in self.index

    def __iter__(self):
        return _LiveIter(self, 0)

    def keys(self):
        """The keys in order (an iterator: unlike an ``OrderedDict``'s view, no ``len``)."""
        return _LiveIter(self, 0)

    def values(self):
        """The connections in order (an iterator)."""
        return _LiveIter(self, 1)

    def items(self):
        """(key, connection) pairs in order (an iterator)."""
        return _LiveIter(self, 2)

    def __repr__(self):
        return f"LiveTable({list(self.items())!r})"


cdef class _LiveIter:
    """An iterator over a :class:`LiveTable` in order: keys (0), values (1) or items
    (2); the table changing under it raises ``RuntimeError``, as an ``OrderedDict``."""

    cdef LiveTable table
    cdef object current  # the connection returned last (None before the first)
    cdef Py_ssize_t version
    cdef int kind
    cdef bint done

    def __cinit__(self, LiveTable table, int kind):
        self.table = table
        self.current = None
        self.version = table.version
        self.kind = kind
        self.done = False

    def __iter__(self):
        return self

    def __next__(self):
        cdef PyObject* node
        if self.done:
            raise StopIteration
        if self.table.version != self.version:
            self.done = True
            raise RuntimeError("LiveTable mutated during iteration")
        if self.current is None:
            node = self.table.head
        else:
            node = (<ConnectionBase>self.current)._lru_next
        if node is NULL:
            self.done = True
            self.current = None
            raise StopIteration
        conn = <object>node
        self.current = conn
        if self.kind == 1:
            return conn
        key = (<ConnectionBase>conn).key
        # the key the table holds it under (the connection's own ``key`` field, unless a
        # caller stored it under another one)
        if self.table.index.get(key) is not conn:
            key = next(k for k, v in self.table.index.items() if v is conn)
        if self.kind == 0:
            return key
        return (key, conn)


from heapq import heapify as _heapify  # noqa: E402
from heapq import heappop as _heappop  # noqa: E402
from heapq import heappush as _heappush  # noqa: E402


ctypedef struct DeadlineRec:
    long long deadline_ns
    long long flow_id
    PyObject* key  # a reference the heap owns


cdef inline bint _deadline_lt(DeadlineRec* a, DeadlineRec* b) noexcept:
    return a.deadline_ns < b.deadline_ns or (
        a.deadline_ns == b.deadline_ns and a.flow_id < b.flow_id)


@cython.final
cdef class DeadlineHeap:
    """Twin of ``flowtable.DeadlineHeap``: the flow table's short timers, each entry three C
    fields (24 bytes; the reference's tuple and its two integers take ~130). An entry's
    place is its deadline, then its flow_id (one connection's entries share its key), as
    the reference's tuples compare, so both pop the same entries in the same order.

    A deadline or flow_id that is not an exact integer within +-2**62 (``_time_c``) turns
    the heap into the reference's list of tuples for good (``_objs``): no capture's times
    come near, but the results must still be the reference's."""

    cdef DeadlineRec* e
    cdef Py_ssize_t n
    cdef Py_ssize_t cap
    cdef list _objs

    def __cinit__(self):
        self.e = NULL
        self.n = 0
        self.cap = 0
        self._objs = None

    def __dealloc__(self):
        self._release()

    cdef void _release(self) noexcept:
        cdef Py_ssize_t i
        for i in range(self.n):
            Py_XDECREF(self.e[i].key)
        PyMem_Free(self.e)
        self.e = NULL
        self.n = self.cap = 0

    def __len__(self):
        return len(self._objs) if self._objs is not None else self.n

    cdef int _to_objects(self) except -1:
        """Every entry as the reference's tuple, in a list kept as a heap from now on."""
        cdef Py_ssize_t i
        objs = [(self.e[i].deadline_ns, self.e[i].flow_id, <object>self.e[i].key)
                for i in range(self.n)]
        _heapify(objs)
        self._release()
        self._objs = objs
        return 0

    def push(self, deadline_ns, flow_id, key):
        self.push_c(deadline_ns, flow_id, key)

    cdef int push_ll(self, long long deadline_ns, object flow_id, object key) except -1:
        """:meth:`push_c` of a C integer deadline (boxed only where the records cannot
        hold it)."""
        cdef long long f
        if self._objs is None and -_C_TIME_LIMIT < deadline_ns < _C_TIME_LIMIT \
                and _time_c(flow_id, &f):
            return self._push_rec(deadline_ns, f, key)
        return self.push_c(deadline_ns, flow_id, key)

    cdef int _push_rec(self, long long deadline_ns, long long flow_id,
                       object key) except -1:
        """One C entry pushed (while the heap holds C entries)."""
        self.e = <DeadlineRec*>_grow(self.e, self.n, &self.cap, sizeof(DeadlineRec))
        Py_INCREF(key)
        self.e[self.n].deadline_ns = deadline_ns
        self.e[self.n].flow_id = flow_id
        self.e[self.n].key = <PyObject*>key
        self.n += 1
        self._sift_up(self.n - 1)
        return 0

    cdef int push_c(self, object deadline_ns, object flow_id, object key) except -1:
        cdef long long d, f
        if self._objs is None and _time_c(deadline_ns, &d) and _time_c(flow_id, &f):
            return self._push_rec(d, f, key)
        if self._objs is None:
            self._to_objects()
        _heappush(self._objs, (deadline_ns, flow_id, key))
        return 0

    cdef void _sift_up(self, Py_ssize_t i) noexcept:
        cdef DeadlineRec item = self.e[i]
        cdef Py_ssize_t parent
        while i > 0:
            parent = (i - 1) >> 1
            if not _deadline_lt(&item, &self.e[parent]):
                break
            self.e[i] = self.e[parent]
            i = parent
        self.e[i] = item

    cdef void _sift_down(self, Py_ssize_t i) noexcept:
        cdef DeadlineRec item = self.e[i]
        cdef Py_ssize_t child
        while True:
            child = 2 * i + 1
            if child >= self.n:
                break
            if child + 1 < self.n and _deadline_lt(&self.e[child + 1], &self.e[child]):
                child += 1
            if not _deadline_lt(&self.e[child], &item):
                break
            self.e[i] = self.e[child]
            i = child
        self.e[i] = item

    def due(self, now_ns):
        """Whether the earliest entry's deadline is at or before ``now_ns``."""
        cdef long long t
        if self._objs is not None:
            return bool(self._objs) and self._objs[0][0] <= now_ns
        if self.n == 0:
            return False
        if _time_c(now_ns, &t):
            return self.e[0].deadline_ns <= t
        return self.e[0].deadline_ns <= now_ns

    def pop(self):
        """The earliest entry, removed (IndexError when empty)."""
        cdef DeadlineRec top
        if self._objs is not None:
            return _heappop(self._objs)
        if self.n == 0:
            raise IndexError("pop from an empty deadline heap")
        top = self.e[0]
        entry = (top.deadline_ns, top.flow_id, <object>top.key)
        Py_XDECREF(top.key)  # the tuple holds it now
        self.n -= 1
        if self.n:
            self.e[0] = self.e[self.n]
            self._sift_down(0)
        return entry

    def retain(self, keep):
        """Keep only the entries whose ``(flow_id, key)`` ``keep`` accepts."""
        if self._objs is not None:
            objs = [x for x in self._objs if keep(x[1], x[2])]
            _heapify(objs)
            self._objs = objs
            return
        cdef Py_ssize_t i = 0, kept = 0, n = self.n, cap = self.cap
        cdef DeadlineRec* e = self.e
        # ``keep`` is Python code: the entries are taken out while it runs, so nothing it
        # did to this heap could meet a half-filtered array (what it pushed is dropped, as
        # the reference drops what is pushed onto the list it replaces).
        self.e = NULL
        self.n = self.cap = 0
        try:
            while i < n:
                if keep(e[i].flow_id, <object>e[i].key):
                    e[kept] = e[i]
                    kept += 1
                else:
                    Py_XDECREF(e[i].key)
                i += 1
        finally:
            while i < n:  # ``keep`` raised: the entries it did not judge stay
                e[kept] = e[i]
                kept += 1
                i += 1
            self._adopt(e, kept, cap)

    cdef int _retain_live(self, dict index) except -1:
        """:meth:`retain` keeping the entries whose key ``index`` (a ``LiveTable``'s)
        holds a connection of that flow id: no Python code runs while it filters (a flow
        id is compared as the reference's ``==`` on integers does)."""
        cdef Py_ssize_t i = 0, kept = 0, n = self.n, cap = self.cap
        cdef DeadlineRec* e = self.e
        cdef PyObject* c
        cdef long long flow_id
        self.e = NULL
        self.n = self.cap = 0
        try:
            while i < n:
                c = PyDict_GetItemWithError(index, <object>e[i].key)
                if c is not NULL and _as_ll((<ConnectionBase>c).flow_id, &flow_id) \
                        and flow_id == e[i].flow_id:
                    e[kept] = e[i]
                    kept += 1
                else:
                    Py_XDECREF(e[i].key)
                i += 1
        finally:
            while i < n:  # a key's lookup raised (none can: the table's tuples): kept
                e[kept] = e[i]
                kept += 1
                i += 1
            self._adopt(e, kept, cap)
        return 0

    cdef void _adopt(self, DeadlineRec* e, Py_ssize_t kept, Py_ssize_t cap) noexcept:
        self._release()
        self.e = e
        self.n = kept
        self.cap = cap
        cdef Py_ssize_t i = kept // 2 - 1
        while i >= 0:
            self._sift_down(i)
            i -= 1


cdef tuple _key_of_c(Segment seg):
    """Twin of ``flowtable.FlowTable.key_of``: the connection's 4-tuple, the lower
    ``(address, port)`` end first, as tuples compare (the address bytes, then the port)."""
    cdef bytes src = <bytes?>seg.src
    cdef bytes dst = <bytes?>seg.dst
    cdef Py_ssize_t ns = PyBytes_GET_SIZE(src), nd = PyBytes_GET_SIZE(dst)
    cdef int c = memcmp(PyBytes_AS_STRING(src), PyBytes_AS_STRING(dst), ns if ns < nd else nd)
    if c == 0:
        c = (ns > nd) - (ns < nd)
    if c < 0 or (c == 0 and seg.sport <= seg.dport):
        return (src, seg.sport, dst, seg.dport)
    return (dst, seg.dport, src, seg.sport)


cdef class FlowTableBase:
    """The per-segment routing of ``flowtable.FlowTable.on_segment``: packet clock, sweep
    trigger, the 4-tuple lookup, the steady path and the opening of a first incarnation
    (``_open``); every other step is the reference's method on the same object (``_sweep``,
    ``_new_incarnation``, ``_reincarnate``, ``_full_path``)."""

    cdef public object live
    cdef public object _by_dir
    # The fields ``_open`` reads and writes (the reference's attributes, as C fields: read
    # without a lookup in the instance's dict).
    cdef public object options
    cdef public object next_flow_id
    cdef public object peak_live
    cdef public object _reserved
    cdef public object _challenged
    cdef public object _deferred
    cdef public object _last_end
    cdef public object allocated
    cdef public object _held
    cdef public object _deadlines
    cdef public object _deadlines_compact_at
    cdef public bint _jump_pending
    cdef public long long slot_lo
    cdef public long long slot_hi
    # The reference's _clock_ns and _last_sweep_ns (properties below): a C integer while the
    # value is an exact integer within +-2**62 ns (every classic pcap time), else the object,
    # so that the clock of each segment is read without converting three Python integers.
    cdef long long _clock_c
    cdef long long _sweep_c
    cdef bint _clock_in_c
    cdef bint _sweep_in_c
    cdef object _clock_obj
    cdef object _sweep_obj

    @property
    def _clock_ns(self):
        return self._clock_c if self._clock_in_c else self._clock_obj

    @_clock_ns.setter
    def _clock_ns(self, value):
        self._clock_in_c = _time_c(value, &self._clock_c)
        self._clock_obj = None if self._clock_in_c else value

    @property
    def _last_sweep_ns(self):
        return self._sweep_c if self._sweep_in_c else self._sweep_obj

    @_last_sweep_ns.setter
    def _last_sweep_ns(self, value):
        self._sweep_in_c = _time_c(value, &self._sweep_c)
        self._sweep_obj = None if self._sweep_in_c else value

    cdef int _tick(self, object ts, list finished) except -1:
        """The head of ``flowtable.FlowTable.on_segment``: the packet clock and the sweep
        trigger, which every segment passes (a ``--jobs`` worker's foreign ones too).
        Computed in C while the times are exact integers within +-2**62 ns (year 2116:
        every classic pcap time), else on Python integers as the reference."""
        cdef long long t
        if _time_c(ts, &t):
            return self._tick_time(t, ts, finished)
        return self._tick_obj(ts, finished)

    cdef int _tick_obj(self, object ts, list finished) except -1:
        """:meth:`_tick` on Python integers, as the reference."""
        clock = self._clock_ns
        if ts > clock:
            if ts - clock <= MAX_CLOCK_JUMP_NS or clock < 0 or (
                    self._jump_pending and (ts <= TS_NS_MAX or clock > TS_NS_MAX)):
                self._clock_ns = clock = ts
                self._jump_pending = False
            else:
                self._jump_pending = True
        else:
            self._jump_pending = False
        if clock - self._last_sweep_ns >= SWEEP_INTERVAL_NS:
            self._sweep(clock, finished)
        return 0

    @cython.final
    cdef inline int _tick_time(self, long long t, object ts, list finished) except -1:
        """:meth:`_tick` for a time the caller also holds as the C integer ``t``: in C
        while ``t``, the clock and the last sweep are within +-2**62 ns, else on ``ts``
        (None: ``t`` boxed, for a caller that did not build the object)."""
        if self._clock_in_c and self._sweep_in_c and -_C_TIME_LIMIT < t < _C_TIME_LIMIT:
            return self._tick_c(t, finished)
        return self._tick_obj(t if ts is None else ts, finished)

    @cython.final
    cdef inline int _tick_c(self, long long t, list finished) except -1:
        """:meth:`_tick` for a time ``t`` within +-2**62 ns while the clock and the last
        sweep are C integers (there ts <= TS_NS_MAX holds: the reference's test reduces
        to this)."""
        cdef long long c = self._clock_c
        if t > c:
            if t - c <= _C_MAX_CLOCK_JUMP_NS or c < 0 or self._jump_pending:
                self._clock_c = c = t
                self._jump_pending = False
            else:
                self._jump_pending = True
        else:
            self._jump_pending = False
        if c - self._sweep_c >= _C_SWEEP_INTERVAL_NS:
            self._sweep(c, finished)
        return 0

    def _open(self, key, seg, finished, previous=None):
        """Twin of ``FlowTable._open`` (:meth:`_open_c`)."""
        if previous is not None or type(seg) is not Segment:
            return type(self).__reference__._open(self, key, seg, finished, previous)
        return self._open_c(key, <Segment>seg, <list?>finished)

    cdef object _open_c(self, object key, Segment seg, list finished):
        """``FlowTable._open`` of a first incarnation (``previous`` None): the same steps
        on the C fields, ``guess_client_is_src`` and ``_add`` inlined (their Python calls
        and a dozen attribute lookups were ~9 k instructions a connection)."""
        deferred = self._deferred
        if deferred and finished is not deferred:
            self._hand_over(finished)
        # flowtable.guess_client_is_src
        cdef int flags = seg.flags
        cdef bint client_is_src, inferred, s_known, d_known
        if flags & SYN and not flags & RST_BIT:
            client_is_src = not flags & ACK_BIT
            inferred = False
        else:
            s_known = seg.sport < WELL_KNOWN_PORT_LIMIT
            d_known = seg.dport < WELL_KNOWN_PORT_LIMIT
            client_is_src = d_known if s_known != d_known else seg.sport >= seg.dport
            inferred = True
        challenged = self._challenged.pop(key, None) if self._challenged else None
        if self._reserved >= 0:
            flow_id = self._reserved
            self._reserved = -1
        elif challenged is not None and challenged[1] == seg.seq \
                and flags & SYN_ACK_RST == SYN:
            flow_id = challenged[0]
        else:
            flow_id = self.next_flow_id
            self.next_flow_id = flow_id + 1
            if self.allocated is not None:
                self.allocated.append(flow_id)
        cdef _Refs r = _refs()
        cls = r.connection
        if r.connection_init_c:
            conn = _tp_new(cls)
            (<ConnectionBase>conn)._init(flow_id, key, seg, client_is_src, inferred,
                                         self.options)
        else:
            conn = cls(flow_id, key, seg, client_is_src, inferred, self.options)
        last = self._last_end.pop(key, None) if self._last_end else None
        if last is not None:
            conn.incarnation = 1
            conn.previous_end_ts_ns = last[0]
            conn.previous_states = (last[1], last[2])
        # FlowTable._add (the compiled tables' own methods called in C)
        live = self.live
        if type(live) is LiveTable:
            (<LiveTable>live)._set_c(key, conn)
        else:
            live[key] = conn
        by_dir = self._by_dir
        reverse = (key[2], key[3], key[0], key[1])
        if type(by_dir) is FlowIndex:
            (<FlowIndex>by_dir)._set_item(key, conn)
            (<FlowIndex>by_dir)._set_item(reverse, conn)
        else:
            by_dir[key] = conn
            by_dir[reverse] = conn
        n_live = len(live)
        if n_live > self.peak_live:
            self.peak_live = n_live
        if n_live > self.options.max_connections:
            self._evict_one(key, finished)
        return conn

    cpdef object on_segment(self, Segment seg, list finished):
        """Route one segment; connections that finish are appended to ``finished``."""
        if seg.ts_o is None:
            self._tick_time(seg.ts_c, None, finished)
        else:
            self._tick(seg.ts_o, finished)
        cdef long long slot
        if self.slot_hi:
            slot = slot_of(seg)
            if slot < self.slot_lo or slot >= self.slot_hi:
                return None  # another worker's connection (flowtable.slot_of)
        by_dir = self._by_dir
        if type(by_dir) is FlowIndex:
            conn = (<FlowIndex>by_dir).get_segment(seg)
        else:
            conn = (<dict?>by_dir).get((seg.src, seg.sport, seg.dst, seg.dport))
        if conn is not None:
            key = (<ConnectionBase?>conn).key
            if seg.flags & SYN_ACK_RST == SYN and self._new_incarnation(conn, seg):
                conn = self._reincarnate(conn, key, seg, finished)
            else:
                live = self.live
                if type(live) is LiveTable and (<LiveTable>live).holds(<ConnectionBase>conn):
                    (<LiveTable>live).touch(<ConnectionBase>conn)
                else:
                    live.move_to_end(key)
                if (<ConnectionBase>conn).steady and steady_segment(conn, seg) >= 0:
                    return conn
        else:
            key = _key_of_c(seg)
            conn = self._open_c(key, seg, finished)
        return self._full_path_c(conn, key, seg)

    @staticmethod
    def key_of(seg):
        """Twin of ``FlowTable.key_of`` (:func:`_key_of_c`)."""
        if type(seg) is Segment:
            return _key_of_c(<Segment>seg)
        from tcptrace_py.flowtable import FlowTable  # another segment type: the reference
        return FlowTable.__reference__.key_of(seg)

    def _full_path(self, conn, key, seg):
        """Twin of ``FlowTable._full_path``: replay a segment through the connection's
        full path, then schedule its timers."""
        return self._full_path_c(conn, key, seg)

    cdef object _full_path_c(self, object conn_obj, object key, object seg):
        held = self._held
        if held and key in held:  # a 4-tuple with a held SYN: the reference's steps
            return type(self).__reference__._full_path(self, conn_obj, key, seg)
        cdef ConnectionBase conn = <ConnectionBase?>conn_obj
        if type(seg) is Segment:
            conn._on_segment_c(<Segment>seg)
        else:
            conn_obj.on_segment(seg)
        cdef _Refs r = _refs()
        # Both ends ESTABLISHED (most segments of a capture): neither done nor in TIME_WAIT.
        cs = (<EndpointMachineBase?>conn.client).state
        ss = (<EndpointMachineBase?>conn.server).state
        if cs is r.established and ss is r.established:
            return conn
        cdef long long* packets
        if conn._is_done_c(r) or cs is r.time_wait or ss is r.time_wait:
            self._push_quiet_deadline(conn, r, key)
            if not conn.compacted:  # closing: it may wait out TIME_WAIT here
                if type(conn_obj).compact is r.connection_compact:
                    conn._compact_c(r)
                else:  # replaced (a test turning compaction off): the class's own
                    conn_obj.compact()
        else:
            packets = &conn._pv[P_PACKETS]
            if packets[0] + packets[1] == 1:
                # A new connection: the attempt timeout, unless answered (the sweep
                # re-reads the real deadline).
                self._push_quiet_deadline(conn, r, key)
        return conn

    cdef int _push_quiet_deadline(self, ConnectionBase conn, _Refs r, object key) except -1:
        """``_push_deadline_c(conn._quiet_deadline_c(r), conn.flow_id, key)``, in C
        integers onto the compiled heap where they are (:meth:`ConnectionBase.
        _quiet_deadline_ll`, :meth:`DeadlineHeap.push_ll`)."""
        cdef long long d
        heap = self._deadlines
        if type(heap) is not DeadlineHeap or not conn._quiet_deadline_ll(r, &d):
            return self._push_deadline_c(conn._quiet_deadline_c(r), conn.flow_id, key)
        (<DeadlineHeap>heap).push_ll(d, conn.flow_id, key)
        if len(<DeadlineHeap>heap) > self._deadlines_compact_at:
            self._compact_deadlines()
        return 0

    def _sweep_entry(self, now_ns, entry, finished):
        """Twin of ``FlowTable._sweep_entry``: one deadline-heap entry due at ``now_ns``.
        The connection's quiet deadline and its done and attempt tests are read in C,
        and the reference's ``_remove`` and ``_remember_end`` are done here on the
        compiled tables; their Python calls were ~11 k instructions an entry (2m.pcap:
        18 k entries, 2 % of its instructions). Anything else (another table, heap or
        connection class, or those methods replaced) takes the reference."""
        cls = type(self)
        live = self.live
        by_dir = self._by_dir
        if (type(live) is not LiveTable or type(by_dir) is not FlowIndex
                or type(entry) is not tuple or PyTuple_GET_SIZE(entry) != 3
                or not _keeps_reference(cls, "_remove", _CHECK_REMOVE)
                or not _keeps_reference(cls, "_remember_end", _CHECK_REMEMBER_END)):
            return cls.__reference__._sweep_entry(self, now_ns, entry, finished)
        flow_id = <object>PyTuple_GET_ITEM(entry, 1)
        key = <object>PyTuple_GET_ITEM(entry, 2)
        conn_obj = (<LiveTable>live).index.get(key)
        if conn_obj is None or not isinstance(conn_obj, ConnectionBase):
            if conn_obj is None:
                return None
            return cls.__reference__._sweep_entry(self, now_ns, entry, finished)
        cdef ConnectionBase conn = <ConnectionBase>conn_obj
        if conn.flow_id != flow_id:
            return None
        cdef _Refs r = _refs()
        cdef long long deadline_c
        deadline = deadline_c if conn._quiet_deadline_ll(r, &deadline_c) \
            else conn._quiet_deadline_c(r)
        if deadline > now_ns:
            # Idle-timeout deadlines are the LRU scan's job (see the reference).
            if deadline < _joined(conn.last_ts_c, conn.last_ts_o) \
                    + _options_of(self.options).idle_timeout_ns:
                heap = self._deadlines
                if type(heap) is DeadlineHeap:
                    (<DeadlineHeap>heap).push_c(deadline, flow_id, key)
                else:
                    heap.push(deadline, flow_id, key)
            return None
        held = self._held
        if held and key in held:
            self._release(key, finished)  # never answered: its new incarnation opens
            return None
        conn.check_timers(now_ns)
        if conn._is_done_c(r) or conn.time_wait_expired:
            conn.end_reason = "time_wait_expired" if conn.time_wait_expired else "closed"
        else:
            conn.finalize(now_ns)
            conn.end_reason = "attempt_timeout" if conn._is_attempt_c(r) else "idle_timeout"
        # FlowTable._remove
        live.pop(key)
        del by_dir[key]
        by_dir.pop((key[2], key[3], key[0], key[1]), None)  # absent for a self-connect
        # FlowTable._remember_end
        self._last_end[key] = (_joined(conn.last_ts_c, conn.last_ts_o),
                               _state_value(r, (<EndpointMachineBase?>conn.client).state),
                               _state_value(r, (<EndpointMachineBase?>conn.server).state))
        (<list?>finished).append(conn)
        return None

    def _push_deadline(self, deadline_ns, flow_id, key):
        """Twin of ``FlowTable._push_deadline``."""
        self._push_deadline_c(deadline_ns, flow_id, key)

    cdef int _push_deadline_c(self, object deadline_ns, object flow_id,
                              object key) except -1:
        heap = self._deadlines
        if type(heap) is DeadlineHeap:
            (<DeadlineHeap>heap).push_c(deadline_ns, flow_id, key)
        else:  # a heap a caller put in its place: its own method
            heap.push(deadline_ns, flow_id, key)
        if len(heap) > self._deadlines_compact_at:
            self._compact_deadlines()
        return 0

    def _compact_deadlines(self):
        """Twin of ``FlowTable._compact_deadlines``: the filter in C (``live.get(key)`` and
        the flow id compared per entry, ~40 % of its cost was the call of the reference's
        Python closure) when the heap and the table are the compiled ones."""
        heap = self._deadlines
        live = self.live
        if type(heap) is not DeadlineHeap or type(live) is not LiveTable \
                or (<DeadlineHeap>heap)._objs is not None:
            return type(self).__reference__._compact_deadlines(self)
        (<DeadlineHeap>heap)._retain_live((<LiveTable>live).index)
        self._deadlines_compact_at = 2 * len(heap) + DEADLINE_SLACK


cdef object MAX_CLOCK_JUMP_NS = 86_400 * 1_000_000_000
cdef object SWEEP_INTERVAL_NS = 1_000_000_000
cdef object TS_NS_MAX = (1 << 63) - 1
cdef long long _C_MAX_CLOCK_JUMP_NS = 86_400 * 1_000_000_000
cdef long long _C_SWEEP_INTERVAL_NS = 1_000_000_000
CONSTANTS["MAX_CLOCK_JUMP_NS"] = MAX_CLOCK_JUMP_NS
CONSTANTS["SWEEP_INTERVAL_NS"] = SWEEP_INTERVAL_NS
CONSTANTS["TS_NS_MAX"] = TS_NS_MAX
CONSTANTS["TIME_WAIT_EXPIRED"] = _TIME_WAIT_EXPIRED


# ================================================================ pcapng (capture/pcapng.py)
cdef extern from *:
    bint __builtin_mul_overflow(long long a, long long b, long long* res) nogil
    bint __builtin_add_overflow(long long a, long long b, long long* res) nogil


cdef class EpbState:
    """The block loop's state that the EPB run reads and leaves updated (the locals of
    ``capture.pcapng._blocks`` of the same names)."""

    cdef public long long frame_no
    cdef public object last_ts
    cdef public object prev_ts
    cdef public object min_ts
    cdef public bint backwards_warned
    cdef public long long pending
    cdef public long long pending_lt
    cdef public object out_of_range
    cdef public long long section


def pcapng_epb_run(fb, list interfaces, bint little, decoder, diag, str display,
                   EpbState st, Router router=None):
    """Twin of the inner loop of ``capture.pcapng._blocks`` over whole Enhanced Packet
    Blocks (segment mode): the same tests for leaving the loop, the same timestamp,
    counting and backwards rules; frames decoded from a pointer into the buffer, any frame
    the compiled decoder does not take handed to the reference decoder as a slice.

    With a ``router``, as :func:`read_pcap_segments`: segments go to the flow table from
    here, other ``--jobs`` workers' segments only to its clock, and the loop yields
    ``None`` when the engine has work to do."""
    from tcptrace_py.capture.common import (
        MAX_BLOCK_BYTES,
        MAX_RECORD_BYTES,
        note_backwards,
        note_out_of_range,
    )
    from tcptrace_py.capture.pcapng import EPB
    from tcptrace_py.segment import TS_NS_MAX, TS_NS_MIN

    reference = decoder.reference if isinstance(decoder, Decoder) else decoder
    ref_decode = reference.decode
    cdef bytes buf = fb.buf
    cdef Py_ssize_t pos = fb.pos
    cdef Py_ssize_t n = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t end = n - 32
    cdef Py_ssize_t n_ifaces = len(interfaces)
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
    cdef const uint8_t* r
    cdef uint32_t btype, blen, iface_id, ts_hi, ts_lo, caplen, wire_len, tail
    cdef uint32_t epb = EPB
    cdef long long max_block = MAX_BLOCK_BYTES, max_record = MAX_RECORD_BYTES
    cdef unsigned long long units
    cdef long long mul, offset, ts_c
    cdef Py_ssize_t cached_id = -1
    cdef bint simple = False, c_ok = False, in_range
    cdef int lt = 0
    cdef Py_ssize_t data_start
    cdef long long tcp_segments = 0
    cdef Segment seg
    cdef long long lo = 0, hi = 0
    if router is not None:
        lo = router.slot_lo
        hi = router.slot_hi
    iface = None
    try:
        while pos <= end:
            r = p + pos
            if little:
                btype = le32(r)
                blen = le32(r + 4)
                iface_id = le32(r + 8)
                ts_hi = le32(r + 12)
                ts_lo = le32(r + 16)
                caplen = le32(r + 20)
                wire_len = le32(r + 24)
            else:
                btype = be32(r)
                blen = be32(r + 4)
                iface_id = be32(r + 8)
                ts_hi = be32(r + 12)
                ts_lo = be32(r + 16)
                caplen = be32(r + 20)
                wire_len = be32(r + 24)
            if (btype != epb or blen < 32 or blen % 4 or blen > max_block
                    or pos + <Py_ssize_t>blen > end + 32 or iface_id >= n_ifaces
                    or caplen > blen - 32 or caplen > max_record):
                break
            tail = le32(r + blen - 4) if little else be32(r + blen - 4)
            if tail != blen:
                break
            if <Py_ssize_t>iface_id != cached_id:
                cached_id = iface_id
                iface = interfaces[iface_id]
                lt = iface.linktype
                simple = iface.div == 1 and iface.shift == 0
                c_ok = False
                if simple:
                    try:
                        mul = iface.mul
                        offset = iface.offset_ns
                        c_ok = True
                    except OverflowError:
                        c_ok = False
            units = (<unsigned long long>ts_hi << 32) | ts_lo
            # A time in 0..LLONG_MAX (segment.TS_NS_MIN..TS_NS_MAX) is computed in C; any
            # other goes through Python's integers and the explicit range check.
            if c_ok and units <= <unsigned long long>LLONG_MAX and \
                    not __builtin_mul_overflow(<long long>units, mul, &ts_c) and \
                    not __builtin_add_overflow(ts_c, offset, &ts_c) and ts_c >= 0:
                ts = ts_c
                in_range = True
            else:
                if simple:
                    ts = units * iface.mul + iface.offset_ns
                else:
                    ts = iface.ts_ns(units)
                in_range = TS_NS_MIN <= ts <= TS_NS_MAX
            if not in_range:
                note_out_of_range(st.out_of_range, st.section, iface_id, st.frame_no + 1, ts)
            elif ts < st.last_ts:
                st.backwards_warned = note_backwards(diag, display, st.backwards_warned,
                                                     st.frame_no + 1, ts, st.last_ts)
                if st.min_ts is None or ts < st.min_ts:
                    st.min_ts = ts
            else:
                if st.min_ts is None:
                    st.min_ts = ts
                st.last_ts = ts
            st.prev_ts = ts
            st.frame_no += 1
            if lt != st.pending_lt and st.pending:
                diag.frames += st.pending
                diag.link_types[st.pending_lt] += st.pending
                st.pending = 0
            st.pending_lt = lt
            st.pending += 1
            data_start = pos + 28
            pos += blen
            fb.pos = pos
            seg = decode_frame(p + data_start, caplen, lt, st.frame_no, ts, 0, lo, hi)
            if seg is not None:
                tcp_segments += 1
                if router is None:
                    yield seg
                elif seg is _FOREIGN:
                    if router.foreign(ts, st.frame_no):
                        yield None
                elif router.route(seg, ts, st.frame_no):
                    seg = None
                    yield None
                seg = None  # the next segment may reuse it (``_spare``)
                continue
            ref_seg = ref_decode(lt, buf[data_start:data_start + caplen], st.frame_no, ts,
                                 wire_len)
            if router is None:
                if ref_seg is not None:
                    yield ref_seg
            elif ref_seg is not None:
                if router.route(ref_seg, ts, st.frame_no):
                    yield None
            elif router.icmp:
                yield None
    finally:
        if tcp_segments:
            diag.tcp_segments += tcp_segments


def connection_classify(conn, seg, snd, rcv, amask):
    """``ConnectionBase._classify_c`` for the tests that compare it with
    ``Connection._classify``."""
    return (<ConnectionBase?>conn)._classify_c(_refs(), <Segment?>seg, snd, rcv, amask)

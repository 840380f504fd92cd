/*
	A stand-in for librmr_si in tests: the RMR C API that xapp/ric/rmr.py binds, with rmr.h's rmr_mbuf_t, on
	a context that loops every message it sends back into its own receive ring.

	- rmr_init takes the port as RMR's examples give it ("43086"); port 1 fails as a port in use would.
	- rmr_ready answers 1 from its third call on, so callers have to wait for it.
	- The receive fd is a pipe holding one byte per queued message (librmr_si uses an eventfd in semaphore
	  mode), so it is readable exactly while messages wait.
	- A looped-back message gets a buffer sized to its payload, as a receiver sizes one to what arrived, and
	  carries its sender, which rmr_rts_msg needs: rts on a buffer that was never received is RMR_ERR_NOENDPT.
	  rmr_rts_msg loops back too, marking the message as returned.
	- A successful send frees the buffer handed over and returns a new, small one, as the library hands back
	  a different buffer: callers must use the returned pointer and check its size.
	- Message type STUB_MT_RETRY answers RMR_ERR_RETRY as many times as its first payload byte says, then
	  sends; STUB_MT_NO_ROUTE has no route.
	- rmr_stub_counter("live" | "attempts" | "returned") reports buffers allocated and not freed, send and rts
	  calls, and messages returned to sender, across contexts.

	Build: gcc -shared -fPIC -o librmr_stub.so rmr_stub.c
*/

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RMR_MAX_XID		32
#define RMR_MAX_MEID	32
#define RMR_MAX_SRC		64

#define RMR_OK				0
#define RMR_ERR_BADARG		1
#define RMR_ERR_NOENDPT		2
#define RMR_ERR_SENDFAILED	5
#define RMR_ERR_OVERFLOW	9
#define RMR_ERR_RETRY		10
#define RMR_ERR_TIMEOUT		12

#define STUB_MT_RETRY		990
#define STUB_MT_NO_ROUTE	991
#define STUB_RING			1024
#define STUB_SMALL			16		// payload size of the buffer a successful send returns

typedef struct {				// rmr.h's layout, field for field
	int	state;
	int	mtype;
	int	len;
	unsigned char* payload;
	unsigned char* xaction;
	int sub_id;
	int	tp_state;

	void*	tp_buf;
	void*	header;
	unsigned char* id;
	int	flags;
	int	alloc_len;

	void*	ring;
	int	rts_fd;
} rmr_mbuf_t;

typedef struct {				// what header points at in the stub
	unsigned char meid[RMR_MAX_MEID];
	unsigned char xid[RMR_MAX_XID];
	char src[RMR_MAX_SRC];		// the sender of a received message; empty on an allocated one
	int returned;				// arrived through rmr_rts_msg
	int retries;				// RMR_ERR_RETRY answers given since the payload was written
} stub_hdr_t;

typedef struct {
	char name[RMR_MAX_SRC];
	int norm_size;
	int ready_calls;
	int pipe_fds[2];
	rmr_mbuf_t* ring[STUB_RING];
	int head;
	int count;
} stub_ctx_t;

static int live = 0;
static int attempts = 0;
static int returned = 0;

#define HDR(m) ((stub_hdr_t*) (m)->header)

static rmr_mbuf_t* new_mbuf( int size ) {
	rmr_mbuf_t* m = calloc( 1, sizeof( *m ) );
	stub_hdr_t* h = calloc( 1, sizeof( *h ) );
	unsigned char* p = malloc( size > 0 ? size : 1 );

	if( m == NULL || h == NULL || p == NULL ) {
		free( m );
		free( h );
		free( p );
		errno = ENOMEM;
		return NULL;
	}
	m->header = h;
	m->tp_buf = p;
	m->payload = p;
	m->xaction = h->xid;
	m->alloc_len = size;
	m->mtype = -1;
	m->sub_id = -1;
	m->rts_fd = -1;
	live++;
	return m;
}

extern int rmr_stub_counter( const char* name ) {
	if( strcmp( name, "live" ) == 0 ) {
		return live;
	}
	if( strcmp( name, "attempts" ) == 0 ) {
		return attempts;
	}
	if( strcmp( name, "returned" ) == 0 ) {
		return returned;
	}
	return -1;
}

extern void rmr_free_msg( rmr_mbuf_t* mbuf ) {
	if( mbuf == NULL ) {
		return;
	}
	free( mbuf->tp_buf );
	free( mbuf->header );
	free( mbuf );
	live--;
}

extern void* rmr_init( char* proto_port, int max_msg_size, int flags ) {
	stub_ctx_t* ctx;
	char* end;
	long port;
	int i;

	(void) flags;
	errno = 0;
	port = proto_port == NULL ? 0 : strtol( proto_port, &end, 10 );
	if( port < 1 || port > 65535 || *end != 0 ) {
		errno = EINVAL;
		return NULL;
	}
	if( port == 1 ) {
		errno = EADDRINUSE;
		return NULL;
	}
	if( (ctx = calloc( 1, sizeof( *ctx ) )) == NULL ) {
		errno = ENOMEM;
		return NULL;
	}
	if( pipe( ctx->pipe_fds ) != 0 ) {
		free( ctx );
		return NULL;
	}
	for( i = 0; i < 2; i++ ) {
		fcntl( ctx->pipe_fds[i], F_SETFL, fcntl( ctx->pipe_fds[i], F_GETFL ) | O_NONBLOCK );
	}
	snprintf( ctx->name, sizeof( ctx->name ), "stub:%ld", port );
	ctx->norm_size = max_msg_size > 0 ? max_msg_size : 4096;
	return ctx;
}

extern int rmr_ready( void* vctx ) {
	stub_ctx_t* ctx = vctx;

	if( ctx == NULL ) {
		return 0;
	}
	if( ctx->ready_calls < 3 ) {
		ctx->ready_calls++;
	}
	return ctx->ready_calls >= 3;
}

extern int rmr_get_rcvfd( void* vctx ) {
	return vctx == NULL ? -1 : ((stub_ctx_t*) vctx)->pipe_fds[0];
}

extern void rmr_close( void* vctx ) {
	stub_ctx_t* ctx = vctx;

	if( ctx == NULL ) {
		return;
	}
	while( ctx->count > 0 ) {
		rmr_free_msg( ctx->ring[ctx->head] );
		ctx->head = (ctx->head + 1) % STUB_RING;
		ctx->count--;
	}
	close( ctx->pipe_fds[0] );
	close( ctx->pipe_fds[1] );
	free( ctx );
}

extern rmr_mbuf_t* rmr_alloc_msg( void* vctx, int size ) {
	if( vctx == NULL ) {
		errno = EINVAL;
		return NULL;
	}
	return new_mbuf( size > 0 ? size : ((stub_ctx_t*) vctx)->norm_size );
}

extern int rmr_payload_size( rmr_mbuf_t* msg ) {
	if( msg == NULL ) {
		errno = EINVAL;
		return -1;
	}
	return msg->alloc_len;
}

extern rmr_mbuf_t* rmr_realloc_payload( rmr_mbuf_t* old_msg, int new_len, int copy, int clone ) {
	unsigned char* p;

	if( old_msg == NULL || new_len < 0 || clone ) {		// cloning is not needed by the binding
		errno = EINVAL;
		return NULL;
	}
	if( old_msg->alloc_len < new_len ) {
		if( (p = malloc( new_len )) == NULL ) {
			errno = ENOMEM;
			return NULL;
		}
		if( copy ) {
			memcpy( p, old_msg->payload, old_msg->len );
		}
		free( old_msg->tp_buf );
		old_msg->tp_buf = p;
		old_msg->payload = p;
		old_msg->alloc_len = new_len;
	}
	if( ! copy ) {
		old_msg->mtype = -1;
		old_msg->sub_id = -1;
		old_msg->len = 0;
	}
	return old_msg;
}

extern void rmr_bytes2payload( rmr_mbuf_t* mbuf, unsigned char const* src, int len ) {
	if( src == NULL || mbuf == NULL || mbuf->payload == NULL ) {
		errno = EINVAL;
		return;
	}
	mbuf->state = RMR_OK;
	if( len > mbuf->alloc_len ) {
		mbuf->state = RMR_ERR_OVERFLOW;
		errno = EMSGSIZE;
		len = mbuf->alloc_len;
	}
	mbuf->len = len;
	memcpy( mbuf->payload, src, len );
	HDR( mbuf )->retries = 0;
}

extern int rmr_bytes2meid( rmr_mbuf_t* mbuf, unsigned char const* src, int len ) {
	unsigned char* meid;

	if( src == NULL || mbuf == NULL || mbuf->header == NULL ) {
		errno = EINVAL;
		return -1;
	}
	errno = 0;
	if( len > RMR_MAX_MEID ) {
		len = RMR_MAX_MEID;
		errno = EOVERFLOW;
	}
	meid = HDR( mbuf )->meid;
	memcpy( meid, src, len );
	if( len == RMR_MAX_MEID ) {
		if( meid[len - 1] != 0 ) {
			meid[len - 1] = 0;
			errno = EOVERFLOW;
		}
	} else {
		meid[len] = 0;
	}
	return len;
}

extern unsigned char* rmr_get_meid( rmr_mbuf_t* mbuf, unsigned char* dest ) {
	if( mbuf == NULL || mbuf->header == NULL ) {
		errno = EINVAL;
		return NULL;
	}
	if( dest == NULL && (dest = malloc( RMR_MAX_MEID )) == NULL ) {
		errno = ENOMEM;
		return NULL;
	}
	memcpy( dest, HDR( mbuf )->meid, RMR_MAX_MEID );
	return dest;
}

/*
	The send path of rmr_send_msg and rmr_rts_msg: the message goes into the context's own ring.
*/
static rmr_mbuf_t* transmit( stub_ctx_t* ctx, rmr_mbuf_t* msg, int rts ) {
	rmr_mbuf_t* in = NULL;
	rmr_mbuf_t* fresh = NULL;
	ssize_t wrote;
	int tail;

	if( ctx == NULL || msg == NULL || msg->header == NULL ) {
		errno = EINVAL;
		if( msg != NULL ) {
			msg->state = RMR_ERR_BADARG;
		}
		return msg;
	}
	attempts++;
	if( msg->mtype == STUB_MT_NO_ROUTE || (rts && HDR( msg )->src[0] == 0) ) {
		msg->state = RMR_ERR_NOENDPT;
		msg->tp_state = ENXIO;
		return msg;
	}
	if( msg->mtype == STUB_MT_RETRY && msg->len > 0 && HDR( msg )->retries < msg->payload[0] ) {
		HDR( msg )->retries++;
		msg->state = RMR_ERR_RETRY;
		msg->tp_state = EAGAIN;
		return msg;
	}
	if( ctx->count == STUB_RING || (in = new_mbuf( msg->len )) == NULL || (fresh = new_mbuf( STUB_SMALL )) == NULL ) {
		rmr_free_msg( in );
		msg->state = RMR_ERR_SENDFAILED;
		msg->tp_state = ENOBUFS;
		return msg;
	}

	memcpy( in->header, msg->header, sizeof( stub_hdr_t ) );
	snprintf( HDR( in )->src, RMR_MAX_SRC, "%s", ctx->name );
	HDR( in )->returned = rts;
	in->mtype = msg->mtype;
	in->sub_id = msg->sub_id;
	in->len = msg->len;
	memcpy( in->payload, msg->payload, msg->len );

	tail = (ctx->head + ctx->count) % STUB_RING;
	ctx->ring[tail] = in;
	ctx->count++;
	wrote = write( ctx->pipe_fds[1], "m", 1 );		// the pipe holds 64 KiB, the ring 1024 messages
	(void) wrote;
	returned += rts;

	rmr_free_msg( msg );
	return fresh;
}

extern rmr_mbuf_t* rmr_send_msg( void* vctx, rmr_mbuf_t* msg ) {
	return transmit( vctx, msg, 0 );
}

extern rmr_mbuf_t* rmr_rts_msg( void* vctx, rmr_mbuf_t* msg ) {
	return transmit( vctx, msg, 1 );
}

extern rmr_mbuf_t* rmr_torcv_msg( void* vctx, rmr_mbuf_t* old_msg, int ms_to ) {
	stub_ctx_t* ctx = vctx;
	struct pollfd pfd;
	rmr_mbuf_t* m;
	char byte;
	ssize_t got;

	if( ctx == NULL ) {
		errno = EINVAL;
		if( old_msg != NULL ) {
			old_msg->state = RMR_ERR_BADARG;
		}
		return old_msg;
	}
	if( ctx->count == 0 && ms_to != 0 ) {
		pfd.fd = ctx->pipe_fds[0];
		pfd.events = POLLIN;
		poll( &pfd, 1, ms_to );
	}
	if( ctx->count == 0 ) {				// as librmr_si: the caller's buffer back, or nil
		if( old_msg != NULL ) {
			old_msg->state = RMR_ERR_TIMEOUT;
			old_msg->len = 0;
		}
		return old_msg;
	}

	rmr_free_msg( old_msg );
	m = ctx->ring[ctx->head];
	ctx->head = (ctx->head + 1) % STUB_RING;
	ctx->count--;
	got = read( ctx->pipe_fds[0], &byte, 1 );		// one byte was written per message
	(void) got;
	m->state = RMR_OK;
	return m;
}

extern rmr_mbuf_t* rmr_rcv_msg( void* vctx, rmr_mbuf_t* old_msg ) {
	return rmr_torcv_msg( vctx, old_msg, -1 );
}

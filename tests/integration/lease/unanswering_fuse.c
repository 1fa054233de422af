/* A FUSE server with one file, "f", that never answers a FLUSH sent by the
 * process given on its command line (any thread of it), and answers
 * everything else: a close of "f" by that process then waits for ever, in
 * the kernel, uninterruptibly once this server has read the request. The
 * hostile-descriptor tests hand such a file to the sealfs daemon
 * (control_socket_test.cc).
 *
 *   unanswering_fuse MOUNTPOINT VICTIM_PID
 *
 * Prints "mounted" once serving; runs until killed (its death aborts the
 * connection, and the waiting close returns). */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pid_t victim;
static const char kContent[] = "unanswered\n";

/* The thread group of a task the kernel names by its thread id. */
static pid_t thread_group_of(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/status", (int)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  char line[256];
  pid_t tgid = -1;
  while (fgets(line, sizeof line, f) != NULL) {
    if (strncmp(line, "Tgid:", 5) == 0) {
      tgid = (pid_t)atoi(line + 5);
      break;
    }
  }
  fclose(f);
  return tgid;
}

static void fill_stat(fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof *st);
  st->st_ino = ino;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else {
    st->st_mode = S_IFREG | 0444;
    st->st_nlink = 1;
    st->st_size = sizeof kContent - 1;
  }
}

static void do_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (parent != FUSE_ROOT_ID || strcmp(name, "f") != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct fuse_entry_param e;
  memset(&e, 0, sizeof e);
  e.ino = 2;
  fill_stat(2, &e.attr);
  fuse_reply_entry(req, &e);
}

static void do_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)fi;
  struct stat st;
  fill_stat(ino, &st);
  fuse_reply_attr(req, &st, 0);
}

static void do_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (ino != 2) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  fuse_reply_open(req, fi);
}

static void do_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                    struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  const size_t len = sizeof kContent - 1;
  if ((size_t)off >= len) {
    fuse_reply_buf(req, NULL, 0);
    return;
  }
  fuse_reply_buf(req, kContent + off, size < len - (size_t)off ? size : len - (size_t)off);
}

static void do_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  if (thread_group_of(fuse_req_ctx(req)->pid) == victim) return; /* never answered */
  fuse_reply_err(req, 0);
}

static void do_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  (void)fi;
  fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .lookup = do_lookup,
    .getattr = do_getattr,
    .open = do_open,
    .read = do_read,
    .flush = do_flush,
    .release = do_release,
};

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: unanswering_fuse MOUNTPOINT VICTIM_PID\n");
    return 2;
  }
  victim = (pid_t)atoi(argv[2]);
  char *fuse_argv[] = {argv[0], NULL};
  struct fuse_args args = FUSE_ARGS_INIT(1, fuse_argv);
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof ops, NULL);
  if (se == NULL || fuse_session_mount(se, argv[1]) != 0) {
    fprintf(stderr, "unanswering_fuse: cannot mount on %s\n", argv[1]);
    return 1;
  }
  printf("mounted\n");
  fflush(stdout);
  /* Multi-threaded: a FLUSH left unanswered must not stop the rest. */
  struct fuse_loop_config *config = fuse_loop_cfg_create();
  int rc = fuse_session_loop_mt(se, config);
  fuse_loop_cfg_destroy(config);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return rc == 0 ? 0 : 1;
}

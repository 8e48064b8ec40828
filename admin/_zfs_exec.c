/*
 * zfs and zpool for lab machines: what admin/_zfs_exec.py does (run the real
 * command in the ZFS daemon's mount namespace; its docstring says why),
 * without starting a Python interpreter for every zfs command a node runs.
 * That start cost about 60 ms on the lab's 2-core machines, which a real
 * machine, where ZFS lives in the kernel, never pays.
 *
 * admin/lab compiles this file with REAL_ZFS and REAL_ZPOOL defined as the
 * host's real commands (C string literals), and uses the Python version on a
 * machine without a C compiler.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The pid of a running zfs-fuse daemon, or -1. */
static pid_t daemon_pid(void)
{
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    pid_t found = -1;

    if (proc == NULL)
        return -1;
    while (found < 0 && (entry = readdir(proc)) != NULL) {
        char path[64], comm[32];
        ssize_t count;
        int fd;

        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/comm", entry->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        count = read(fd, comm, sizeof comm - 1);
        close(fd);
        if (count <= 0)
            continue;
        comm[count] = '\0';
        if (strcmp(comm, "zfs-fuse\n") == 0)
            found = (pid_t)atoi(entry->d_name);
    }
    closedir(proc);
    return found;
}

int main(int argc, char **argv)
{
    const char *name = strrchr(argv[0], '/');
    const char *real;
    pid_t pid;

    (void)argc;
    name = name != NULL ? name + 1 : argv[0];
    if (strcmp(name, "zfs") == 0)
        real = REAL_ZFS;
    else if (strcmp(name, "zpool") == 0)
        real = REAL_ZPOOL;
    else {
        fprintf(stderr, "%s: not a wrapped ZFS command\n", name);
        return 127;
    }
    pid = daemon_pid();
    if (pid > 0) {
        char path[64];
        int fd;

        snprintf(path, sizeof path, "/proc/%d/ns/mnt", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNS) != 0) {
            fprintf(stderr, "%s: cannot enter the ZFS daemon's mount "
                    "namespace: %s\n", name, strerror(errno));
            return 126;
        }
        close(fd);
    }
    argv[0] = (char *)name;
    execv(real, argv);
    fprintf(stderr, "%s: cannot run %s: %s\n", name, real, strerror(errno));
    return 127;
}

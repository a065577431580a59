"""A SIGBUS from a memory-mapped file that shrank, counted instead of killing the process.

Reading a mapped page that lies past the end of its file (the file was truncated after it was
mapped) raises SIGBUS, whose default action ends the process without a word, and which Python
cannot turn into an exception: the faulting load would run again forever. While the handler
installed here is in place, such a fault (``BUS_ADRERR``) maps a page of zeros over the faulting
page and counts the fault; the load then reads zeros and the work goes on, and the caller, who
knows which files it mapped, checks ``fault_count`` afterwards and refuses the results with an
error naming the file that shrank (link_fast/mapped.py). Any other SIGBUS gets the action that was
in place before (the default, or faulthandler's). link_fast/_mapped.pyi types this module.
"""

cdef extern from *:
    """
    #include <signal.h>
    #include <stdint.h>
    #include <string.h>
    #include <sys/mman.h>
    #include <unistd.h>

    static volatile sig_atomic_t lf_faults = 0;
    static uintptr_t lf_page_size = 0;
    static struct sigaction lf_previous;
    static int lf_installed = 0;

    static void lf_on_sigbus(int sig, siginfo_t *info, void *context) {
    #ifdef BUS_ADRERR
        if (info->si_code == BUS_ADRERR) {
            void *page = (void *) ((uintptr_t) info->si_addr & ~(lf_page_size - 1));
            if (mmap(page, lf_page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                    != MAP_FAILED) {
                lf_faults = lf_faults + 1;
                return;
            }
        }
    #endif
        /* Not a mapped file's end: the action in place before, when the load faults again. */
        sigaction(SIGBUS, &lf_previous, NULL);
    }

    static int lf_install(void) {
        struct sigaction action;
        if (lf_installed)
            return 0;
        lf_page_size = (uintptr_t) sysconf(_SC_PAGESIZE);
        memset(&action, 0, sizeof action);
        action.sa_sigaction = lf_on_sigbus;
        action.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&action.sa_mask);
        if (sigaction(SIGBUS, &action, &lf_previous) != 0)
            return -1;
        lf_installed = 1;
        return 0;
    }

    static int lf_uninstall(void) {
        if (!lf_installed)
            return 0;
        lf_installed = 0;
        return sigaction(SIGBUS, &lf_previous, NULL);
    }

    static long lf_fault_count(void) {
        return (long) lf_faults;
    }
    """
    int lf_install()
    int lf_uninstall()
    long lf_fault_count()


def install():
    """Catch SIGBUS on mapped files that shrank (see the module docstring); the handler in place
    before is kept, for ``uninstall`` and for any other SIGBUS."""
    if lf_install() != 0:
        raise OSError("cannot install the SIGBUS handler")


def uninstall():
    """Put back the SIGBUS handler ``install`` replaced."""
    if lf_uninstall() != 0:
        raise OSError("cannot restore the SIGBUS handler")


def fault_count():
    """How many pages past the end of a mapped file were read, and read as zeros, so far."""
    return lf_fault_count()

/* Preloaded by benchmarks/avx2_only.py: the process sees the CPUID of an AVX2-only x86 CPU.
 *
 * Kernel libraries (torch's ATen and fbgemm, oneDNN, ONNX Runtime's MLAS, numpy) choose their
 * code path from the CPUID instruction when they load. Linux can make CPUID fault in a thread
 * (arch_prctl ARCH_SET_CPUID 0, on CPUs with the cpuid_fault flag; threads and forks inherit
 * it, exec resets it, so every process loads this library again through LD_PRELOAD). The
 * SIGSEGV handler below runs the real CPUID with faulting briefly off, clears the bits of
 * AVX-512 and its extensions, AVX-VNNI, AVX10 and AMX, and resumes after the instruction.
 * XCR0 (xgetbv) is left as the OS set it: libraries test it together with the CPUID bits.
 *
 * What stays the machine's own: the C library's string functions, chosen by the dynamic
 * loader before any constructor runs, and the core's clock, caches and execution units.
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#define BIT(n) (1u << (n))

static long cpuid_faults(int on) { return syscall(SYS_arch_prctl, ARCH_SET_CPUID, on ? 0 : 1); }

/* Leaf 7 feature bits an AVX2-only CPU lacks (Intel SDM vol. 2A, CPUID; AMD APM vol. 3). */
static void hide(uint32_t leaf, uint32_t subleaf, uint32_t r[4]) {
  if (leaf == 7 && subleaf == 0) {
    /* EBX: AVX512F, DQ, IFMA, PF, ER, CD, BW, VL */
    r[1] &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
    /* ECX: AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
    r[2] &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
    /* EDX: AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8 */
    r[3] &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
  } else if (leaf == 7 && subleaf == 1) {
    /* EAX: AVX_VNNI, AVX512_BF16, AMX_FP16, AVX_IFMA */
    r[0] &= ~(BIT(4) | BIT(5) | BIT(21) | BIT(23));
    /* EDX: AVX_VNNI_INT8, AVX_NE_CONVERT, AMX_COMPLEX, AVX10 */
    r[3] &= ~(BIT(4) | BIT(5) | BIT(8) | BIT(19));
  }
}

static void on_segv(int sig, siginfo_t *info, void *context) {
  (void)sig;
  (void)info;
  greg_t *reg = ((ucontext_t *)context)->uc_mcontext.gregs;
  const unsigned char *ip = (const unsigned char *)reg[REG_RIP];
  if (ip[0] != 0x0f || ip[1] != 0xa2) { /* not CPUID: a real fault, let it kill as usual */
    signal(SIGSEGV, SIG_DFL);
    return;
  }
  uint32_t leaf = (uint32_t)reg[REG_RAX], subleaf = (uint32_t)reg[REG_RCX], r[4];
  cpuid_faults(0);
  __cpuid_count(leaf, subleaf, r[0], r[1], r[2], r[3]);
  cpuid_faults(1);
  hide(leaf, subleaf, r);
  reg[REG_RAX] = r[0];
  reg[REG_RBX] = r[1];
  reg[REG_RCX] = r[2];
  reg[REG_RDX] = r[3];
  reg[REG_RIP] += 2; /* past the two bytes of CPUID */
}

__attribute__((constructor)) static void start(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = on_segv;
  action.sa_flags = SA_SIGINFO;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGSEGV, &action, 0) != 0 || cpuid_faults(1) != 0) {
    static const char msg[] =
        "cpuid_mask: Linux refused to make CPUID fault in this process (arch_prctl "
        "ARCH_SET_CPUID); time on an AVX2-only machine instead\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(97);
  }
}

/* EBX of CPUID leaf 7 as this process sees it (tests read the AVX512F bit, 16). */
unsigned int cpuid_mask_leaf7_ebx(void) {
  unsigned int a, b, c, d;
  __cpuid_count(7, 0, a, b, c, d);
  return b;
}

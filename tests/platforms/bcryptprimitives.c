/*
 * A stand-in for Windows' bcryptprimitives.dll, for running the official
 * node.exe under Wine 8 (Debian 12), which lacks that DLL. Windows 10 and later
 * ship it; Node and Rust's standard library take their random bytes from its
 * ProcessPrng. Here ProcessPrng asks bcrypt.dll, which Wine has, for the same
 * system RNG. run.js builds this with zig into the test's own Wine prefix only;
 * nothing that ships uses it.
 *
 * No C runtime and no headers (built with -nostdlib): the few declarations it
 * needs are below, so zig need not build a MinGW CRT first (minutes on a cold
 * cache).
 */

typedef int BOOL;
typedef unsigned char BYTE;
typedef unsigned long ULONG;     /* 32 bits on Windows (LLP64) */
typedef unsigned long long SIZE_T;
typedef long NTSTATUS;

#define BCRYPT_USE_SYSTEM_PREFERRED_RNG 0x00000002UL
#define STATUS_UNSUCCESSFUL 0xC0000001UL

__declspec(dllimport) NTSTATUS __stdcall BCryptGenRandom(void *algorithm, BYTE *buffer, ULONG length, ULONG flags);
__declspec(dllimport) void __stdcall ExitProcess(unsigned int code);

/* The entry point (-Wl,--entry=DllMain): nothing to set up or tear down. */
BOOL __stdcall DllMain(void *module, ULONG reason, void *reserved)
{
    (void)module;
    (void)reason;
    (void)reserved;
    return 1;
}

__declspec(dllexport) BOOL __stdcall ProcessPrng(BYTE *out, SIZE_T len)
{
    /* BCryptGenRandom takes a 32-bit length: ask in pieces that fit one. */
    while (len > 0) {
        ULONG piece = len > 0x40000000ULL ? 0x40000000UL : (ULONG)len;
        if (BCryptGenRandom(0, out, piece, BCRYPT_USE_SYSTEM_PREFERRED_RNG) < 0) {
            /* Windows documents ProcessPrng as never failing; callers do not check. */
            ExitProcess(STATUS_UNSUCCESSFUL);
        }
        out += piece;
        len -= piece;
    }
    return 1;
}

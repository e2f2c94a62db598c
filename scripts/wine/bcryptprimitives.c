/* Rust's standard library (1.78+) gets randomness from ProcessPrng in bcryptprimitives.dll,
 * which Wine 8 lacks, so no Rust program starts under it. This stand-in answers from
 * RtlGenRandom (advapi32's SystemFunction036), the generator Rust used before. Tests only:
 * it is installed into the throwaway Wine prefix, never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk)) return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

// Everything lives in include/CMalloc.h; SwiftPM needs one source file per C target.

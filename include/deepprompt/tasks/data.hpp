#pragma once
// The dataset readers of deepprompt::data: GLUE TSV, SuperGLUE JSONL, CoNLL-2003 columns, SQuAD
// JSON and WebNLG XML. Each reads a path, a string or a stream into plain structs (no tensors),
// raises FormatError naming the file and line (or JSON path) of a malformed record, and counts
// whatever it skips or finds odd in ReadStats.
//
// WebNLG needs tinyxml2 (Debian libtinyxml2-dev, link -ltinyxml2); it is included here only when
// <tinyxml2.h> is available, and then only a program that calls its functions needs the library.
#include "data/common.hpp"
#include "data/conll.hpp"
#include "data/glue.hpp"
#include "data/squad.hpp"
#include "data/superglue.hpp"
#if __has_include(<tinyxml2.h>)
#include "data/webnlg.hpp"
#endif

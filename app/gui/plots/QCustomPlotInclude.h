// <qcustomplot.h> spells Qt's keyword macros (signals, slots, emit, foreach), which the project
// turns off with QT_NO_KEYWORDS because torch headers use `slots` as an identifier. They are
// defined for this one header and removed again, so a torch header included later is unaffected.
#pragma once

#include <QtGlobal>

#define signals Q_SIGNALS
#define slots Q_SLOTS
#define emit Q_EMIT
#define foreach Q_FOREACH
#include <qcustomplot.h>
#undef signals
#undef slots
#undef emit
#undef foreach

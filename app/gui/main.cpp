// mla-workbench: the desktop shell. Opens the model given as the first argument, else the one
// open when the last session ended, else the bundled demo model; restores the last session
// (window layout, results database, the tabs' choices).
//
// --screenshots DIR [--model DIR]: visits every tab in a representative state, saves one PNG per
// tab into DIR and exits (ScreenshotTour; 0 when every PNG was written). Works offscreen.
// Hidden option --screenshot FILE: once the model is shown, saves the main window as PNG and
// quits (exit 0; 1 when the image cannot be written, 2 when the model fails to load).
// Neither screenshot mode reads or writes the session.
#include "app/gui/BundledResources.h"
#include "app/gui/MainWindow.h"
#include "app/gui/ScreenshotTour.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QPixmap>
#include <QTimer>

#include <cstdio>

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    QApplication::setOrganizationName(QStringLiteral("MLA Workbench"));
    QApplication::setApplicationName(QStringLiteral("mla-workbench"));
    QApplication::setApplicationVersion(QStringLiteral("0.1"));

    QCommandLineParser parser;
    parser.setApplicationDescription(
        QStringLiteral("MLA Workbench: inspect MHA/GQA checkpoints and convert them to Multi-head Latent Attention."));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("model"),
                                 QStringLiteral("Checkpoint folder to open (default: the last one, else the bundled "
                                                "demo model)."),
                                 QStringLiteral("[model]"));
    QCommandLineOption screenshotsOption(QStringLiteral("screenshots"),
                                         QStringLiteral("Save one PNG per tab, in a representative state, into DIR, "
                                                        "then quit."),
                                         QStringLiteral("DIR"));
    QCommandLineOption modelOption(QStringLiteral("model"),
                                   QStringLiteral("The model for --screenshots (default: the bundled demo model)."),
                                   QStringLiteral("DIR"));
    QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
                                        QStringLiteral("Save the window as PNG once the model is shown, then quit."),
                                        QStringLiteral("FILE"));
    screenshotOption.setFlags(QCommandLineOption::HiddenFromHelp);
    parser.addOption(screenshotsOption);
    parser.addOption(modelOption);
    parser.addOption(screenshotOption);
    parser.process(app);

    const QStringList positional = parser.positionalArguments();
    const bool unattended = parser.isSet(screenshotsOption) || parser.isSet(screenshotOption);
    QString folder = parser.isSet(modelOption) ? parser.value(modelOption)
                     : !positional.isEmpty()   ? positional.first()
                                               : QString();
    if (folder.isEmpty() && !unattended) folder = mlawb::gui::MainWindow::lastModelFolder();
    if (folder.isEmpty()) folder = mlawb::gui::bundledModelFolder();
    if (folder.isEmpty()) {
        std::fprintf(stderr, "error: no model given and the bundled demo model is missing\n");
        return 2;
    }

    mlawb::gui::MainWindow window;
    window.resize(1280, 800);

    if (parser.isSet(screenshotsOption)) {
        mlawb::gui::ScreenshotTour tour(window, parser.value(screenshotsOption), folder);
        QObject::connect(&tour, &mlawb::gui::ScreenshotTour::finished, &app,
                         [](int code) { QCoreApplication::exit(code); }, Qt::QueuedConnection);
        window.show();
        tour.start();
        return app.exec();
    }

    if (parser.isSet(screenshotOption)) {
        const QString file = parser.value(screenshotOption);
        window.setShowDialogs(false);  // unattended: an error must end the run, not wait for a click
        QObject::connect(&window, &mlawb::gui::MainWindow::modelLoaded, &window, [&window, file] {
            // One turn of the event loop first, so layouts settle before the grab.
            QTimer::singleShot(200, &window, [&window, file] {
                const bool saved = window.grab().save(file, "PNG");
                if (!saved) std::fprintf(stderr, "error: %s: cannot write PNG\n", qPrintable(file));
                QCoreApplication::exit(saved ? 0 : 1);
            });
        });
        QObject::connect(&window, &mlawb::gui::MainWindow::modelLoadFailed, &window,
                         [](const QString&, const QString& message) {
                             std::fprintf(stderr, "error: %s\n", qPrintable(message));
                             QCoreApplication::exit(2);
                         });
    } else {
        window.restoreSession();
    }

    window.show();
    window.openModelFolder(folder);
    return app.exec();
}

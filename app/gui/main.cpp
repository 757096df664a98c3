// mla-workbench: the desktop shell. Opens the bundled demo model (or the folder given as the
// first argument) at start-up.
//
// Hidden option `--screenshot FILE`: once the model is shown, saves the main window as PNG and
// quits (exit 0; 1 when the image cannot be written, 2 when the model fails to load). Used
// for the documentation's screenshots and to check the layout on a headless machine.
#include "app/gui/MainWindow.h"

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
                                 QStringLiteral("Checkpoint folder to open (default: the bundled demo model)."),
                                 QStringLiteral("[model]"));
    QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
                                        QStringLiteral("Save the window as PNG once the model is shown, then quit."),
                                        QStringLiteral("FILE"));
    screenshotOption.setFlags(QCommandLineOption::HiddenFromHelp);
    parser.addOption(screenshotOption);
    parser.process(app);

    const QStringList positional = parser.positionalArguments();
    const QString folder = positional.isEmpty() ? QStringLiteral(MLAWB_DEMO_MODEL) : positional.first();

    mlawb::gui::MainWindow window;
    window.resize(1280, 800);

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
    }

    window.show();
    window.openModelFolder(folder);
    return app.exec();
}

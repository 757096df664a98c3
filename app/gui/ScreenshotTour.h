// ScreenshotTour: `mla-workbench --screenshots DIR [--model DIR]`. Opens the model (the bundled
// one by default), brings every tab into a representative state and saves the window as one PNG
// per tab: calibrates 2-norm scores if none are cached, chooses 2-norm r=4 d_kv=16, computes its
// spectra, runs a tiny evaluation (4 samples of 2 datasets, the original model and four MLA
// settings) into a temporary database so Results and Pareto have content, compares two runs,
// then exits. Works offscreen (QT_QPA_PLATFORM=offscreen) and under xvfb. Nothing is persisted.
#pragma once

#include <QObject>
#include <QString>
#include <QStringList>
#include <QTemporaryDir>

#include <functional>

namespace mlawb::gui {

class MainWindow;

class ScreenshotTour : public QObject {
    Q_OBJECT

public:
    // The PNG files, in the order they are written.
    static QStringList fileNames();

    ScreenshotTour(MainWindow& window, const QString& outDir, const QString& modelFolder, QObject* parent = nullptr);

    // Opens the model and runs the tour; finished() reports the exit status (0: every PNG
    // written; 1: a PNG could not be written; 2: a step failed, with the message on stderr).
    void start();

Q_SIGNALS:
    void finished(int exitCode);

private:
    void run();
    void fail(int code, const QString& message);
    bool waitUntil(const std::function<bool()>& done, int timeoutMs, const QString& what);
    bool shoot(QWidget* tab, const QString& fileName);

    MainWindow& window_;
    QString out_dir_, model_folder_;
    QTemporaryDir scratch_;  // the tour's results database
    bool failed_ = false;
};

}  // namespace mlawb::gui

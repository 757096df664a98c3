// BackgroundJob: runs one long computation (calibration, spectra) on a std::thread and hands
// its result back on the GUI thread, with progress and a cancel flag the computation polls.
// The panels own one each; nothing long ever runs on the GUI thread.
#pragma once

#include <QObject>
#include <QString>

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

namespace mlawb::gui {

// What the work sees: report progress (any thread), poll for cancellation, and post richer
// updates (a live score, a stage name) to run on the GUI thread in the job's context; posted
// functions still queued when the job is destroyed are dropped, never run.
struct JobControl {
    std::function<void(int64_t done, int64_t total)> progress;
    std::function<bool()> cancelled;
    std::function<void(std::function<void()> on_gui_thread)> post;
};

class BackgroundJob : public QObject {
    Q_OBJECT

public:
    // Runs on the worker thread; returns the function that publishes the result, which then
    // runs on the GUI thread. Throws mlawb::Error (shown to the user) or mlawb::Cancelled.
    using Work = std::function<std::function<void()>(const JobControl& control)>;

    explicit BackgroundJob(QObject* parent = nullptr);
    // Cancels and waits: the worker posts to this object, so it must outlive the thread.
    ~BackgroundJob() override;

    // Starts `work`; false (and nothing started) while another job runs.
    bool start(Work work);
    void cancel() { cancel_requested_ = true; }
    bool isRunning() const { return running_; }

Q_SIGNALS:
    void progressed(qint64 done, qint64 total);
    // After the result was published (ok), or with the error text; `cancelled` when the user
    // cancelled (then ok is false and message is "cancelled").
    void finished(bool ok, bool cancelled, const QString& message);

private:
    void deliver(const std::function<void()>& publish, bool cancelled, const QString& error);

    std::thread thread_;
    std::atomic<bool> cancel_requested_{false};
    bool running_ = false;  // GUI thread only: true from start() to finished()
};

}  // namespace mlawb::gui

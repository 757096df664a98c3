// ModelLoader: reads a checkpoint folder's summary (config.json plus the safetensors tensor
// table) off the GUI thread, so a slow disk or a huge sharded checkpoint never freezes the
// window. The GUI talks to it through two signals and never sees an exception.
#pragma once

#include "core/model_summary.h"

#include <QMetaType>
#include <QObject>
#include <QString>

#include <cstdint>
#include <map>
#include <memory>
#include <thread>

Q_DECLARE_METATYPE(mlawb::ModelSummary)

namespace mlawb::gui {

class ModelLoader : public QObject {
    Q_OBJECT

public:
    explicit ModelLoader(QObject* parent = nullptr);
    // Waits for workers still reading: they post their result to this object, so it must
    // outlive them (reading a summary touches only headers, so the wait is short).
    ~ModelLoader() override;

    // Starts reading `folder` on a worker thread and returns at once. When several loads
    // overlap, only the most recent one reports: an older folder finishing late must not
    // replace the one the user asked for last.
    void load(const QString& folder);

    bool isLoading() const { return pending_loads_ > 0; }

Q_SIGNALS:
    // Emitted on the GUI thread. `folder` is the path as passed to load().
    void loaded(const QString& folder, const mlawb::ModelSummary& summary);
    // `message` is mlawb::Error's text, which names the file and the field at fault.
    void failed(const QString& folder, const QString& message);

private:
    // Runs on the GUI thread when a worker finishes (queued from the worker).
    void deliver(uint64_t request, const QString& folder, std::shared_ptr<mlawb::ModelSummary> summary,
                 const QString& error);

    uint64_t latest_request_ = 0;  // id of the newest load(); older results are dropped
    int pending_loads_ = 0;        // workers started and not yet delivered
    std::map<uint64_t, std::thread> workers_;  // by request id; joined once delivered
};

}  // namespace mlawb::gui
